"""Who may do what in the OCI registry: the token server's policy (pure).

The manager is the registry's token server (Docker Registry token authentication). A client
asks ``GET /api/v1/registry/token?service=...&scope=repository:NAME:pull,push`` with a login;
the manager answers a short-lived JWT listing only the actions :func:`granted` allows. The
registry enforces that list. Identities:

``admin``
    The manager's own registry login (``FLOPS_REGISTRY_USERNAME``/``_PASSWORD``): every action,
    delete included. Never handed to a component.
``builder``
    The login an image builder of a project gets at enrollment: pull and push below its
    owner's image prefix (``<namespace>/owners/<owner component>/``), pull of shared images.
``pull``
    A project's pull login (the Docker backend pulls with it): pull of the repositories of
    the images recorded for that project, and of shared images.
``owner``
    A user's API token: pull below their own prefix (their inference images), and shared.
``edge``
    The node-level login of Oakestra workers (``FLOPS_REGISTRY_EDGE_USERNAME``): an SLA
    cannot carry pull credentials, so each worker's container runtime is configured with this
    one. Pull of every FLOps image, never push or delete.

Shared images are every repository outside ``<namespace>/owners/`` (base images, FLOps'
own images): pull for any login, push only for ``admin``. Anonymous requests get nothing
(the token endpoint refuses them before this module is asked).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from image_builder.image_tags import slug

IdentityKind = Literal["admin", "owner", "builder", "pull", "edge"]
OWNERS_DIR = "owners"
"""Path component below the image namespace that holds one directory per owner."""
PULL = "pull"
PUSH = "push"
DELETE = "delete"
ALL_ACTIONS = frozenset({PULL, PUSH, DELETE, "*"})
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_SCOPE_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
"""Distribution's repository-name grammar."""
MAX_SCOPES = 32


class ScopeError(ValueError):
    """A ``scope`` parameter that is not ``type:name:actions``."""


@dataclasses.dataclass(frozen=True)
class Scope:
    """One requested (or granted) access: ``repository:flops/x/learner:pull,push``."""

    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, Any]:
        """The JWT ``access`` entry of this scope."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclasses.dataclass(frozen=True)
class RegistryIdentity:
    """Who presents a login at the token endpoint.

    Attributes
    ----------
    kind
        See the module docstring.
    subject
        What the token's ``sub`` names (user, ``project/role``, or the admin login).
    owner
        The owner whose prefix applies (``owner`` and ``builder``).
    repositories
        Exact repository names a ``pull`` login may pull.
    """

    kind: IdentityKind
    subject: str
    owner: str | None = None
    repositories: frozenset[str] = frozenset()


def owner_component(owner: str) -> str:
    """The owner's path component in image names (lower case, starts with a letter)."""
    return f"o-{slug(owner, owner)}"


def owner_namespace(namespace: str, owner: str) -> str:
    """``<namespace>/owners/<owner component>``: the images of ``owner``'s projects."""
    return "/".join(p for p in (namespace.strip("/"), OWNERS_DIR, owner_component(owner)) if p)


def repository_path(registry: str, ref: str) -> str:
    """The repository name of image ``ref`` in ``registry`` (``host[:port][/path]``).

    ``registry.example.com/team/flops/x/learner:tag`` in ``registry.example.com`` gives
    ``team/flops/x/learner``; a digest reference (``@sha256:...``) works the same.
    """
    host = registry.split("/", 1)[0]
    rest = ref.removeprefix(host + "/") if ref.startswith(host + "/") else ref.split("/", 1)[-1]
    name = rest.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1]) + last[-1].index(":")]
    return name


def registry_prefix(registry: str, namespace: str) -> str:
    """The repository-name prefix of ``namespace`` in ``registry`` (its path part included)."""
    path = registry.split("/", 1)[1] if "/" in registry else ""
    return "/".join(p.strip("/") for p in (path, namespace) if p.strip("/"))


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse ``scope`` query values (each may hold several space-separated scopes).

    Raises
    ------
    ScopeError
        For a malformed scope, an invalid repository name, or too many scopes.
    """
    scopes: list[Scope] = []
    for value in values:
        for text in value.split():
            kind, sep, rest = text.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not kind or not name:
                raise ScopeError(f"scope {text[:200]!r} is not type:name:actions")
            if kind == "repository" and not _SCOPE_NAME.match(name):
                raise ScopeError(f"invalid repository name {name[:200]!r}")
            wanted = tuple(sorted({a for a in actions.split(",") if a}))
            scopes.append(Scope(kind, name, wanted))
            if len(scopes) > MAX_SCOPES:
                raise ScopeError(f"more than {MAX_SCOPES} scopes")
    return scopes


def _under(name: str, prefix: str) -> bool:
    return bool(prefix) and name.startswith(prefix.rstrip("/") + "/")


def allowed_actions(identity: RegistryIdentity, scope: Scope, *, namespace: str) -> frozenset[str]:
    """Every action ``identity`` may perform on ``scope``'s resource.

    ``namespace`` is the repository-name prefix of FLOps' images (:func:`registry_prefix`).
    """
    if identity.kind == "admin":
        return ALL_ACTIONS
    if scope.type != "repository":
        return frozenset()
    owners = "/".join(p for p in (namespace.strip("/"), OWNERS_DIR) if p)
    if not _under(scope.name, owners):
        return frozenset({PULL})  # shared images: base images, FLOps' own
    if identity.kind == "edge":
        return frozenset({PULL})
    if identity.kind == "pull":
        return frozenset({PULL}) if scope.name in identity.repositories else frozenset()
    own = owner_namespace(namespace, identity.owner) if identity.owner else ""
    if not _under(scope.name, own):
        return frozenset()
    return frozenset({PULL, PUSH}) if identity.kind == "builder" else frozenset({PULL})


def granted(identity: RegistryIdentity, scopes: Iterable[Scope], *, namespace: str) -> list[Scope]:
    """The requested scopes cut down to what ``identity`` may do (empty actions kept out)."""
    out: list[Scope] = []
    for scope in scopes:
        allowed = allowed_actions(identity, scope, namespace=namespace)
        actions = tuple(a for a in scope.actions if a in allowed)
        if actions:
            out.append(dataclasses.replace(scope, actions=actions))
    return out


def token_claims(*, issuer: str, service: str, subject: str, access: Iterable[Scope],
                 now: float, ttl_s: float, jti: str) -> dict[str, Any]:
    """The claim set of a registry bearer token (distribution's ``token.ClaimSet``)."""
    issued = int(now)
    return {
        "iss": issuer,
        "sub": subject,
        "aud": service,
        "exp": issued + int(ttl_s),
        "nbf": issued - 1,
        "iat": issued,
        "jti": jti,
        "access": [scope.claim() for scope in access],
    }


def project_repositories(registry: str, build: Mapping[str, Any] | None) -> frozenset[str]:
    """The repositories of the images recorded for a project (``Project.build``)."""
    images = (build or {}).get("images") or {}
    return frozenset(repository_path(registry, str(ref)) for ref in images.values() if ref)


def trusted_images(builds: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """Every digest reference FLOps recorded as pushed by builders (``build.variants``)."""
    found: set[str] = set()
    for build in builds:
        for variants in ((build or {}).get("variants") or {}).values():
            if isinstance(variants, Mapping):
                found.update(str(ref) for ref in variants.values() if "@" in str(ref))
    return sorted(found)
