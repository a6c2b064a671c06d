"""The registry's token server: logins in, short-lived scoped bearer tokens out.

:meth:`RegistryTokenServer.token` answers ``GET /api/v1/registry/token``. It finds who the
Basic-auth login is (:meth:`identify`), cuts the requested scopes down to what that identity
may do (:mod:`.registry_access`, pure) and signs the result (:mod:`.registry_tokens`).
Every refused login is stored as a rejected event of the project it names, as enrollment does.
"""

from __future__ import annotations

import dataclasses
import datetime
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from flops_contracts.errors import ErrorCode, FlopsError
from flops_manager.identity import registry_access as access
from flops_manager.identity.registry_tokens import LOGIN_PREFIX, Keyring
from flops_manager.ports.auth import Authenticator
from flops_manager.ports.errors import NotFoundError, UnauthorizedError
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import RejectedEvent
from flops_manager.services.clock import Clock, system_clock
from flops_manager.settings import Settings

log = logging.getLogger(__name__)

TOKEN_TOPIC = "api:GET /api/v1/registry/token"  # noqa: S105 - a topic, not a secret
"""The ``topic`` of refused registry logins in the rejected-event log."""
REGISTRY_USERNAME = "FLOPS_REGISTRY_USERNAME"
REGISTRY_PASSWORD = "FLOPS_REGISTRY_PASSWORD"  # noqa: S105 - a variable's name, not a secret
DEFAULT_NAMESPACE = "flops"
"""The image builder's ``image_namespace`` default, below which owners' images live."""


def keyring(settings: Settings) -> Keyring:
    """The manager's registry signing key (``registry_key_dir``, else under ``data_dir``)."""
    directory = settings.registry_key_dir or str(Path(settings.data_dir) / "registry-token")
    return Keyring(Path(directory), issuer=settings.registry_issuer)


def project_login(keys: Keyring, settings: Settings, *, project_id: str, role: str, kind: str,
                  now: float) -> dict[str, str]:
    """A registry login of one project as the variables components read."""
    username, password = keys.get().login(project_id=project_id, role=role, kind=kind, now=now,
                                          ttl_s=settings.registry_login_ttl_s)
    return {REGISTRY_USERNAME: username, REGISTRY_PASSWORD: password}


@dataclasses.dataclass(frozen=True)
class Login:
    """The Basic-auth credentials of a token request (``None``: anonymous)."""

    username: str
    password: str


def _serves_standalone(grants: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether an ended project still runs services its owner deployed on their own.

    Their grants are revoked when those services are removed.
    """
    return any(g.get("standalone") and not g.get("revoked") for g in grants.values())


class PullLogins:
    """Logins a backend pulls a project's images with (the Docker backend's X-Registry-Auth).

    A ``pull`` login of the service's project, made when the image is pulled; the token
    server lets it pull only the project's recorded images, while the project runs (or,
    after it ended, while services its owner deployed on their own still run).
    """

    def __init__(self, keys: Keyring, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.keys = keys
        self.settings = settings
        self.clock = clock
        self.host = (settings.registry or "").split("/", 1)[0]

    def __call__(self, image: str, project_id: str | None) -> dict[str, str] | None:
        """``{"username", "password"}`` for pulling ``image`` of ``project_id``.

        ``None`` for an image of another registry. A service of no project (the shared
        tracking server the manager starts) is pulled with the manager's own login.
        """
        if not self.host or image.split("/", 1)[0] != self.host:
            return None
        if not project_id:
            user, password = self.settings.registry_username, self.settings.registry_password
            return {"username": user, "password": password} if user and password else None
        env = project_login(self.keys, self.settings, project_id=project_id, role="pull",
                            kind="pull", now=self.clock())
        return {"username": env[REGISTRY_USERNAME], "password": env[REGISTRY_PASSWORD]}


class RegistryTokenServer:
    """Mints registry tokens for the logins FLOps hands out.

    Parameters
    ----------
    store
        Projects (a project login is valid only while its project runs).
    settings
        Registry name, service, issuer, lifetimes and the admin login.
    keys
        The signing key.
    authenticator
        Checks users' API tokens (the ``owner`` identity).
    """

    def __init__(self, store: ProjectStore, settings: Settings, *, keys: Keyring,
                 authenticator: Authenticator, clock: Clock = system_clock) -> None:
        self.store = store
        self.settings = settings
        self.keys = keys
        self.authenticator = authenticator
        self.clock = clock
        self.namespace = access.registry_prefix(settings.registry or "", DEFAULT_NAMESPACE)

    def token(self, login: Login | None, *, service: str, scopes: Sequence[str]) -> dict[str, Any]:
        """Answer a token request (the body of the 200 response).

        Raises
        ------
        UnauthorizedError
            No login, or one that is unknown, expired or of an ended project.
        FlopsError
            ``INVALID_REQUEST`` for another service or a malformed scope.
        """
        if service != self.settings.registry_service:
            raise FlopsError(f"unknown service {service[:100]!r}; this token server serves "
                             f"{self.settings.registry_service!r}", code=ErrorCode.INVALID_REQUEST)
        try:
            wanted = access.parse_scopes(scopes)
        except access.ScopeError as exc:
            raise FlopsError(str(exc), code=ErrorCode.INVALID_REQUEST) from None
        if login is None:
            raise UnauthorizedError("the registry needs a login (anonymous access is refused)")
        identity = self.identify(login)
        allowed = access.granted(identity, wanted, namespace=self.namespace)
        now = self.clock()
        claims = access.token_claims(
            issuer=self.settings.registry_issuer, service=service, subject=identity.subject,
            access=allowed, now=now, ttl_s=self.settings.registry_token_ttl_s,
            jti=secrets.token_hex(12))
        token = self.keys.get().sign(claims)
        log.info("registry token for %s (%s): %s", identity.subject, identity.kind,
                 [f"{s.name}:{','.join(s.actions)}" for s in allowed])
        return {"token": token, "access_token": token,
                "expires_in": int(self.settings.registry_token_ttl_s),
                "issued_at": datetime.datetime.fromtimestamp(claims["iat"], datetime.UTC)
                .strftime("%Y-%m-%dT%H:%M:%SZ")}  # RFC 3339, as registry clients parse it

    def identify(self, login: Login) -> access.RegistryIdentity:
        """Who ``login`` is.

        Raises
        ------
        UnauthorizedError
            For a login that is none of the admin login, the edge login, a project login
            whose project still runs, or a user's API token.
        """
        admin_user = self.settings.registry_username
        admin_password = self.settings.registry_password
        if (admin_user and admin_password and hmac.compare_digest(login.username, admin_user)
                and hmac.compare_digest(login.password, admin_password)):
            return access.RegistryIdentity("admin", admin_user)
        edge_user = self.settings.registry_edge_username
        edge_password = self.settings.registry_edge_password
        if (edge_user and edge_password and hmac.compare_digest(login.username, edge_user)
                and hmac.compare_digest(login.password, edge_password)):
            return access.RegistryIdentity("edge", edge_user)
        if login.username.startswith(LOGIN_PREFIX):
            return self._project_identity(login)
        try:
            user = self.authenticator.authenticate(login.password,
                                                   header=f"Bearer {login.password}")
        except UnauthorizedError:
            raise UnauthorizedError("unknown registry login") from None
        return access.RegistryIdentity("owner", user, owner=user)

    def _project_identity(self, login: Login) -> access.RegistryIdentity:
        found = self.keys.get().verify_login(login.password, now=self.clock())
        if found is None:
            self._refuse(login.username.partition(".")[2], "invalid or expired registry login")
        if found.kind == "owner":
            return access.RegistryIdentity("owner", found.role, owner=found.role)
        try:
            project = self.store.get_project(found.project_id)
        except NotFoundError:
            raise UnauthorizedError("registry login of an unknown project") from None
        ended = project.terminal or project.deleting
        if ended and not (found.kind == "pull" and _serves_standalone(project.grants)):
            self._refuse(project.id, f"registry login of project {project.id}, which has ended")
        subject = f"{project.id}/{found.role}"
        if found.kind == "builder":
            return access.RegistryIdentity("builder", subject, owner=project.owner)
        return access.RegistryIdentity(
            "pull", subject, repositories=access.project_repositories(
                self.settings.registry or "", project.build))

    def _refuse(self, project_id: str, reason: str) -> NoReturn:
        """Record a refused project login and raise 401."""
        claim = json.dumps({"project_id": project_id})
        self.store.add_rejected_event(RejectedEvent(
            uuid.uuid4().hex, TOKEN_TOPIC, claim[:4096], reason, self.clock(),
            project_id or None))
        log.warning("registry login refused for %s: %s", project_id, reason)
        raise UnauthorizedError(reason)
