"""Pure mapping of FLOps names to Oakestra names.

Oakestra accepts ``^[a-zA-Z0-9]{1,30}$`` for application and microservice names and
namespaces. FLOps names (``{project_id}-{role}``, ``{project_id}-cluster-aggregator-{c}``...)
are opaque strings of letters, digits, ``.``, ``_`` and ``-``. Each Oakestra name keeps a
readable prefix (the alphanumeric characters, truncated) and ends in 10 hex characters of the
SHA-256 of the full FLOps name, so distinct FLOps names map to distinct Oakestra names (up to a
2**-40 hash collision) and the mapping is the same in every process.
"""

from __future__ import annotations

import hashlib
import re

from flops_manager.adapters.oakestra.errors import InvalidSpecError

OAKESTRA_NAME = re.compile(r"^[a-zA-Z0-9]{1,30}$")
"""What the Oakestra SLA schema accepts for names and namespaces."""

FLOPS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""What this backend accepts as a FLOps service name, project id or owner."""

MAX_LENGTH = 30
HASH_CHARS = 10
DEFAULT_NAMESPACE = "flops"


def check_flops_name(value: str, *, what: str) -> str:
    """Return ``value`` if it is a usable FLOps name.

    Raises
    ------
    InvalidSpecError
        If ``value`` is empty, longer than 128 characters or has other characters than
        letters, digits, ``.``, ``_`` and ``-`` (or does not start with a letter or digit).
    """
    if not isinstance(value, str) or not FLOPS_NAME.fullmatch(value):
        raise InvalidSpecError(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _alnum(value: str) -> str:
    return "".join(ch for ch in value if ch.isascii() and ch.isalnum())


def hashed_name(value: str, *, prefix: str = "") -> str:
    """Return an Oakestra name for ``value``: readable alphanumerics + 10 hex of its hash.

    Parameters
    ----------
    value
        The FLOps name (already checked).
    prefix
        Optional part of ``value`` to leave out of the readable prefix (e.g. the project id,
        which the application name already carries).
    """
    readable = value.removeprefix(prefix) if prefix and value != prefix else value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:HASH_CHARS]
    head = _alnum(readable)[: MAX_LENGTH - HASH_CHARS]
    name = head + digest
    if not OAKESTRA_NAME.fullmatch(name):  # cannot happen: built from alphanumerics and hex
        raise InvalidSpecError(f"derived Oakestra name {name!r} is not valid")
    return name


def namespace_for(role: str) -> str:
    """Return the microservice namespace for a FLOps role (alphanumerics, max. 30)."""
    cleaned = _alnum(role)[:MAX_LENGTH]
    return cleaned or DEFAULT_NAMESPACE


def application_name(app_key: str) -> str:
    """Return the Oakestra application name of a FLOps project (or owner) key."""
    return hashed_name(check_flops_name(app_key, what="project id"))


def microservice_name(service: str, *, app_key: str) -> str:
    """Return the Oakestra microservice name of FLOps service ``service`` in ``app_key``."""
    check_flops_name(service, what="service name")
    return hashed_name(service, prefix=f"{app_key}-")


def app_key_for(*, project_id: str | None, owner: str) -> str:
    """Return the key of the application a service belongs to.

    One application per project; services without a project (mock data providers) share one
    application per owner (``owner-<owner>``, or ``flops-shared`` without owner).
    """
    if project_id:
        return check_flops_name(project_id, what="project id")
    if owner:
        return f"owner-{check_flops_name(owner, what='owner')}"
    return "flops-shared"
