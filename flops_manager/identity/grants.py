"""Enrollment grants: the one credential an orchestrator descriptor may carry (pure).

A grant is issued for one service of one project and role just before the service is created.
Its token, ``fe1.<project id>.<grant id>.<secret>``, travels in the service's plain environment
(an Oakestra SLA, a container's env, a local process's env): that is the only channel every
backend offers. What makes that acceptable is what the token cannot do:

* it is worth nothing but one exchange per instance of its service (``uses``), at the
  manager's ``POST /api/v1/enroll``, for that service's working credentials;
* it expires ``enroll_ttl_s`` after issue, and it and every credential obtained with it are
  revoked when the project ends;
* the manager keeps only its SHA-256 digest.

Grants are plain dictionaries stored on the project document (``Project.grants``, keyed by
grant id), so they are created, used and revoked with the project's optimistic concurrency and
vanish with the project. Everything here is pure: callers pass ids, secrets and times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

TOKEN_PREFIX = "fe1"  # noqa: S105 - the format tag of enrollment tokens, not a secret
MAX_TOKEN_LENGTH = 512


@dataclasses.dataclass(frozen=True)
class TokenParts:
    """The public parts of an enrollment token and its secret."""

    project_id: str
    grant_id: str
    secret: str


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why an exchange is refused; ``status`` 401 (bad credential) or 403 (not for this)."""

    status: int
    reason: str


def token_text(parts: TokenParts) -> str:
    """Return the token a service receives."""
    return f"{TOKEN_PREFIX}.{parts.project_id}.{parts.grant_id}.{parts.secret}"


def parse_token(text: str) -> TokenParts | None:
    """Split a token; ``None`` if it is not one (never raises on any input)."""
    if not isinstance(text, str) or len(text) > MAX_TOKEN_LENGTH:
        return None
    pieces = text.split(".")
    if len(pieces) != 4 or pieces[0] != TOKEN_PREFIX or not all(pieces[1:]):
        return None
    return TokenParts(pieces[1], pieces[2], pieces[3])


def digest(secret: str) -> str:
    """The stored form of a secret (SHA-256, hex)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_grant(
    *, project_id: str, role: str, service: str, secret_keys: Sequence[str], uses: int,
    secret_digest: str, now: float, ttl_s: float, standalone: bool = False,
) -> dict[str, Any]:
    """Return the stored record of a fresh enrollment grant.

    ``secret_keys`` are the names of the secret variables the service's working credentials
    hold (their values are looked up at exchange time, never stored in the grant).
    ``standalone`` grants belong to services a user deploys for a finished project (inference
    servers of its model): they outlive the project's end and end with the service.
    """
    return {
        "project_id": project_id,
        "role": role,
        "service": service,
        "secret_keys": sorted(secret_keys),
        "uses_left": max(int(uses), 1),
        "digest": secret_digest,
        "issued_at": now,
        "expires_at": now + ttl_s,
        "revoked": False,
        "standalone": standalone,
        "enrolled": [],
    }


def refusal(
    grant: Mapping[str, Any] | None,
    *,
    secret: str,
    project_id: str,
    role: str,
    project_active: bool,
    now: float,
) -> Refusal | None:
    """Decide an exchange: ``None`` to accept, or why not.

    ``project_id`` and ``role`` are what the caller claims to be; they must be the grant's.
    """
    if grant is None or not hmac.compare_digest(str(grant.get("digest", "")), digest(secret)):
        return Refusal(401, "unknown enrollment token")
    if grant.get("revoked"):
        return Refusal(401, "enrollment token revoked")
    if now > float(grant["expires_at"]):
        return Refusal(401, "enrollment token expired")
    if int(grant.get("uses_left", 0)) <= 0:
        return Refusal(401, "enrollment token already used (replay)")
    if project_id != grant["project_id"] or role != grant["role"]:
        return Refusal(
            403, f"enrollment token of {grant['project_id']}/{grant['role']} presented for "
            f"{project_id}/{role}",
        )
    if not project_active and not grant.get("standalone"):
        return Refusal(403, f"project {project_id} has ended")
    return None


def used(grant: Mapping[str, Any], *, instance: str, username: str | None,
         now: float) -> dict[str, Any]:
    """Return ``grant`` after one successful exchange by ``instance``."""
    entry = {"instance": instance, "username": username, "at": now}
    return {**grant, "uses_left": int(grant["uses_left"]) - 1,
            "enrolled": [*grant.get("enrolled", []), entry]}


def revoked(grant: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``grant`` revoked (no further exchange; its broker logins are to be removed)."""
    return {**grant, "revoked": True, "uses_left": 0}


def broker_usernames(grants: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every broker login handed out under ``grants`` (of the grants given)."""
    return sorted(
        str(entry["username"])
        for grant in grants.values()
        for entry in grant.get("enrolled", [])
        if entry.get("username")
    )

