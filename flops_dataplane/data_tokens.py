"""Scoped data-plane tokens: what the manager lets one caller do on one FLOps node (pure).

A node agent and the manager share the node's *data key* (handed to the agent once, when it
enrolls). For every data-plane call the manager issues a short-lived token
``fd1.<claims>.<mac>``: base64url JSON claims and an HMAC-SHA256 over them with that key. The
node checks the MAC, the expiry and that the token names this node, and then allows only the
token's operations on the token's tags. Data therefore never transits the manager: the manager
only decides who may talk to which node for what, and for how long.

Claims: ``node`` (node id), ``sub`` (who: ``user:alice``, ``learner:<project>/<n>`` or
``mock-provider:<project>/<n>``),
``ops`` (subset of :data:`OPERATIONS`), ``tags`` (data tags, ``["*"]`` = all), ``exp`` (Unix
time).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

PREFIX = "fd1"
ANY_TAG = "*"
READ, WRITE, DROP = "read", "write", "drop"
OPERATIONS = frozenset({READ, WRITE, DROP})
MAX_TOKEN_LENGTH = 4096
LEARNER_SUBJECT = "learner:"
"""Prefix of a learner token's subject: ``learner:<project id>/<learner index>``."""
PROVIDER_SUBJECT = "mock-provider:"
"""Prefix of a mock data provider's subject: ``mock-provider:<project id>/<learner index>``."""


def learner_subject(project_id: str, learner: int) -> str:
    """The subject of learner ``learner``'s token of project ``project_id``."""
    return f"{LEARNER_SUBJECT}{project_id}/{learner}"


def provider_subject(project_id: str, learner: int) -> str:
    """The subject of the token that writes learner ``learner``'s mock data partition."""
    return f"{PROVIDER_SUBJECT}{project_id}/{learner}"


def token_project(subject: str) -> str | None:
    """The project of a learner's or mock data provider's subject (``None``: e.g. a user's)."""
    for prefix in (LEARNER_SUBJECT, PROVIDER_SUBJECT):
        if subject.startswith(prefix):
            project_id, _, _ = subject.removeprefix(prefix).partition("/")
            return project_id or None
    return None


class TokenRefused(Exception):
    """The token is malformed, forged, expired, for another node or lacks a permission."""


@dataclasses.dataclass(frozen=True)
class DataClaims:
    """What a token allows."""

    node: str
    sub: str
    ops: tuple[str, ...]
    tags: tuple[str, ...]
    exp: float

    def allows(self, op: str, tag: str | None = None) -> bool:
        """Whether ``op`` (on ``tag`` when given) is allowed."""
        if op not in self.ops:
            return False
        return tag is None or ANY_TAG in self.tags or tag in self.tags

    def require(self, op: str, tag: str | None = None) -> None:
        """Raise :class:`TokenRefused` unless :meth:`allows`."""
        if not self.allows(op, tag):
            where = f" on tag {tag!r}" if tag is not None else ""
            raise TokenRefused(f"token of {self.sub} does not allow {op}{where}")

    def visible_tags(self, wanted: Iterable[str]) -> list[str] | None:
        """The tags a listing may show (``None``: every tag)."""
        wanted_list = list(wanted)
        if ANY_TAG in self.tags:
            return wanted_list or None
        return [t for t in (wanted_list or self.tags) if t in self.tags]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: str, body: str) -> str:
    return _b64(hmac.new(key.encode(), body.encode(), hashlib.sha256).digest())


def issue(key: str, claims: DataClaims) -> str:
    """Return the token carrying ``claims``, signed with ``key``."""
    unknown = set(claims.ops) - OPERATIONS
    if unknown:
        raise ValueError(f"unknown operations {sorted(unknown)}")
    body = _b64(json.dumps(dataclasses.asdict(claims), sort_keys=True).encode())
    return f"{PREFIX}.{body}.{_mac(key, body)}"


def verify(key: str, token: str, *, node: str, now: float) -> DataClaims:
    """Return the claims of ``token`` if it is genuine, unexpired and for ``node``.

    Raises
    ------
    TokenRefused
        Saying which check failed.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused("malformed data token")
    pieces = token.split(".")
    if len(pieces) != 3 or pieces[0] != PREFIX:
        raise TokenRefused("malformed data token")
    if not hmac.compare_digest(pieces[2], _mac(key, pieces[1])):
        raise TokenRefused("data token signature invalid (not issued for this node)")
    try:
        raw: Any = json.loads(_unb64(pieces[1]))
        claims = DataClaims(node=str(raw["node"]), sub=str(raw["sub"]),
                            ops=tuple(raw["ops"]), tags=tuple(raw["tags"]),
                            exp=float(raw["exp"]))
    except (ValueError, KeyError, TypeError):
        raise TokenRefused("malformed data token claims") from None
    if claims.node != node:
        raise TokenRefused(f"data token is for node {claims.node!r}, not this node")
    if now > claims.exp:
        raise TokenRefused("data token expired; ask the manager for a new one")
    return claims
