"""Node records and node credentials (pure: callers pass ids, secrets and times).

Two credentials belong to a node, both random, both kept by the manager only as SHA-256
digests:

* the *node token* ``fn1.<token id>.<secret>``: issued to the node's owner (operator) by
  ``POST /api/v1/nodes/<name>/token``, for one node name, usable once, expiring after
  ``NODE_TOKEN_TTL_S``;
* the *node credential* ``fnc1.<node id>.<secret>``: what the agent gets for the token at
  enrollment and presents with every inventory report. Enrolling the name again (a new token)
  replaces it.

The node's *data key* (shared with the agent at enrollment) signs the data tokens of
:mod:`flops_dataplane.data_tokens`; it is stored as is (the manager must sign with it) and
never returned by the API.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Any

NODE_TOKEN_PREFIX = "fn1"  # noqa: S105 - the format tag of node tokens, not a secret
CREDENTIAL_PREFIX = "fnc1"
NODE_TOKEN_TTL_S = 3600.0
OFFLINE_AFTER_INTERVALS = 3.0
MAX_TEXT = 512


def digest(secret: str) -> str:
    """The stored form of a secret (SHA-256, hex)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(stored_digest: str, secret: str) -> bool:
    """Whether ``secret`` is the one whose digest is stored (constant time)."""
    return hmac.compare_digest(stored_digest, digest(secret))


def split_token(text: str, prefix: str) -> tuple[str, str] | None:
    """``(id, secret)`` of ``<prefix>.<id>.<secret>``, or ``None`` (never raises)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return None
    pieces = text.split(".")
    if len(pieces) != 3 or pieces[0] != prefix or not pieces[1] or not pieces[2]:
        return None
    return pieces[1], pieces[2]


def node_id(owner: str, name: str) -> str:
    """The manager-wide id of ``owner``'s node ``name`` (names are unique per owner)."""
    return f"{owner}--{name}"


@dataclasses.dataclass(frozen=True)
class NodeToken:
    """A stored node token (one node name, one use, bounded lifetime)."""

    id: str
    owner: str
    name: str
    digest: str
    expires_at: float
    used: bool = False

    def refusal(self, secret: str, *, name: str, now: float) -> str | None:
        """Why enrolling node ``name`` with ``secret`` is refused, or ``None``."""
        if not matches(self.digest, secret):
            return "unknown node token"
        if self.used:
            return "node token already used; get a new one with `flops node token`"
        if now > self.expires_at:
            return "node token expired; get a new one with `flops node token`"
        if name != self.name:
            return f"node token is for node {self.name!r}, not {name!r}"
        return None


@dataclasses.dataclass(frozen=True)
class Node:
    """An enrolled node and what it last reported."""

    id: str
    owner: str
    name: str
    cluster: str
    platform: str
    credential_digest: str
    data_key: str
    enrolled_at: float
    last_seen: float | None = None
    location: str | None = None
    interval_s: float = 10.0
    datasets: tuple[dict[str, Any], ...] = ()
    leaving: bool = False

    def status(self, now: float) -> str:
        """``online`` while reports arrive, else ``offline`` or ``enrolled``.

        ``offline`` after missing a few reports, or once the agent said it is stopping.
        """
        if self.last_seen is None:
            return "enrolled"
        if self.leaving:
            return "offline"
        late = now - self.last_seen > OFFLINE_AFTER_INTERVALS * self.interval_s
        return "offline" if late else "online"

    def tags(self) -> set[str]:
        """The data tags this node holds."""
        return {str(d["tag"]) for d in self.datasets}

    def rows(self, tags: list[str]) -> int:
        """Rows held under ``tags``."""
        return sum(int(d.get("rows", 0)) for d in self.datasets if d["tag"] in tags)

    def to_doc(self) -> dict[str, Any]:
        """The stored document (``_id`` = id)."""
        doc = dataclasses.asdict(self)
        doc["_id"] = doc.pop("id")
        doc["datasets"] = list(self.datasets)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Node:
        """Rebuild from :meth:`to_doc`."""
        raw = dict(doc)
        raw["id"] = raw.pop("_id")
        raw["datasets"] = tuple(raw.get("datasets") or ())
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in fields})

    def view(self, now: float) -> dict[str, Any]:
        """What the owner sees (no secrets)."""
        return {
            "name": self.name, "cluster": self.cluster, "platform": self.platform,
            "status": self.status(now), "last_seen": self.last_seen,
            "enrolled_at": self.enrolled_at, "location": self.location,
            "datasets": [dict(d) for d in self.datasets],
        }
