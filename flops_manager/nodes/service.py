"""Use cases of FLOps nodes: node tokens, agent enrollment, inventory reports, data grants."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from flops_contracts.errors import ErrorCode, FlopsError
from flops_contracts.ids import check_data_tag, check_identifier
from flops_dataplane import data_tokens
from flops_dataplane.names import MOCK_TAG_PREFIX
from flops_manager.nodes.model import (
    CREDENTIAL_PREFIX,
    NODE_TOKEN_PREFIX,
    NODE_TOKEN_TTL_S,
    Node,
    NodeToken,
    digest,
    matches,
    split_token,
)
from flops_manager.ports.errors import NotFoundError, UnauthorizedError
from flops_manager.ports.node_store import NodeStore
from flops_manager.services.clock import Clock, system_clock

DATA_GRANT_TTL_S = 900.0
"""Lifetime of a data token a user gets for ``flops data`` (push, ls, rm)."""
LEARNER_GRANT_TTL_S = 7 * 24 * 3600.0
"""Lifetime of a learner's read token (a bound on a project's training time)."""
MAX_DATASETS = 1000


def _checked(value: str, what: str) -> str:
    try:
        return check_identifier(value, what=what)
    except ValueError as exc:
        raise FlopsError(str(exc), code=ErrorCode.INVALID_REQUEST) from None


def new_node_id(owner: str, name: str) -> str:
    """A stable id for ``owner``'s node ``name`` (unambiguous for any owner string)."""
    return "n" + hashlib.sha256(f"{owner}\0{name}".encode()).hexdigest()[:24]


def _clean_dataset(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the known, well-typed inventory fields of one reported data set."""
    entry: dict[str, Any] = {
        "tag": check_data_tag(str(raw["tag"])),
        "name": check_identifier(str(raw["name"]), what="data set name"),
        "rows": int(raw["rows"]),
        "bytes": int(raw["bytes"]),
        "schema_fingerprint": str(raw["schema_fingerprint"])[:64],
    }
    if raw.get("created"):
        entry["created"] = str(raw["created"])[:40]
    if raw.get("label_column"):
        entry["label_column"] = str(raw["label_column"])[:128]
    histogram = raw.get("label_histogram")
    if isinstance(histogram, dict):
        entry["label_histogram"] = {str(k)[:64]: int(v) for k, v in list(histogram.items())[:100]}
    return entry


class NodeService:
    """Nodes of every owner, behind a :class:`NodeStore`."""

    def __init__(self, store: NodeStore, *, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------ operators

    def issue_token(self, owner: str, name: str) -> dict[str, Any]:
        """A single-use node token for ``owner``'s node ``name`` (stored hashed)."""
        _checked(name, "node name")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(24)
        expires_at = self.clock() + NODE_TOKEN_TTL_S
        self.store.put_token(NodeToken(token_id, owner, name, digest(secret), expires_at))
        return {"name": name, "token": f"{NODE_TOKEN_PREFIX}.{token_id}.{secret}",
                "expires_at": expires_at}

    def views(self, owner: str) -> list[dict[str, Any]]:
        """Views of ``owner``'s nodes."""
        now = self.clock()
        return [n.view(now) for n in self.store.list_nodes(owner)]

    def get(self, owner: str, name: str) -> dict[str, Any]:
        """View of ``owner``'s node ``name`` (``NotFoundError`` for anybody else's)."""
        return self.store.find_node(owner, _checked(name, "node name")).view(self.clock())

    def nodes(self, owner: str) -> list[Node]:
        """``owner``'s node records (for placement)."""
        return self.store.list_nodes(owner)

    def data_grant(self, owner: str, name: str, *, ops: Sequence[str],
                   tags: Sequence[str]) -> dict[str, Any]:
        """A data token for ``owner`` on node ``name``: ``ops`` on ``tags`` (``*``: all).

        Raises
        ------
        NotFoundError
            If ``owner`` has no node ``name``.
        FlopsError
            (422) For an unknown operation or invalid tag, or a node that never reported.
        """
        node = self.store.find_node(owner, _checked(name, "node name"))
        unknown = set(ops) - data_tokens.OPERATIONS
        if unknown or not ops:
            raise FlopsError(f"operations must be some of {sorted(data_tokens.OPERATIONS)}",
                             code=ErrorCode.INVALID_REQUEST)
        for tag in tags:
            if tag != data_tokens.ANY_TAG:
                try:
                    check_data_tag(tag)
                except ValueError as exc:
                    raise FlopsError(str(exc), code=ErrorCode.INVALID_REQUEST) from None
            if data_tokens.WRITE in ops and (tag == data_tokens.ANY_TAG
                                              or tag.startswith(MOCK_TAG_PREFIX)):
                raise FlopsError(
                    f"data tag {tag!r} cannot be written: tags starting with "
                    f"{MOCK_TAG_PREFIX!r} hold projects' mock data (dropped when the project "
                    "ends), and a write names its tag; push to another tag",
                    code=ErrorCode.INVALID_REQUEST)
        return self._grant(node, sub=f"user:{owner}", ops=ops, tags=tags, ttl_s=DATA_GRANT_TTL_S)

    def learner_grant(self, node: Node, *, project_id: str, learner: int,
                      tags: Sequence[str]) -> dict[str, Any]:
        """A read-only data token of one learner of ``project_id`` on ``node``."""
        return self._grant(node, sub=data_tokens.learner_subject(project_id, learner),
                           ops=[data_tokens.READ], tags=tags, ttl_s=LEARNER_GRANT_TTL_S)

    def provider_grant(self, node: Node, *, project_id: str, learner: int,
                       tags: Sequence[str]) -> dict[str, Any]:
        """A write-only data token for the mock data provider of ``learner`` on ``node``."""
        return self._grant(node, sub=data_tokens.provider_subject(project_id, learner),
                           ops=[data_tokens.WRITE], tags=tags, ttl_s=LEARNER_GRANT_TTL_S)

    def _grant(self, node: Node, *, sub: str, ops: Sequence[str], tags: Sequence[str],
               ttl_s: float) -> dict[str, Any]:
        if node.location is None:
            raise FlopsError(f"node {node.name!r} has not reported yet; is its agent running?",
                             code=ErrorCode.INVALID_REQUEST)
        expires_at = self.clock() + ttl_s
        claims = data_tokens.DataClaims(node=node.id, sub=sub, ops=tuple(ops),
                                        tags=tuple(tags), exp=expires_at)
        return {"node": node.name, "location": node.location,
                "token": data_tokens.issue(node.data_key, claims), "expires_at": expires_at}

    # ------------------------------------------------------------------ agents

    def enroll(self, token: str, *, name: str, cluster: str, platform: str) -> dict[str, str]:
        """Trade a node token for the node's credential and data key (once).

        Raises
        ------
        UnauthorizedError
            For an unknown, used, expired token or one issued for another name.
        """
        parts = split_token(token, NODE_TOKEN_PREFIX)
        if parts is None:
            raise UnauthorizedError("malformed node token")
        _checked(name, "node name")
        _checked(cluster, "cluster")
        found = self.store.use_token(parts[0])
        now = self.clock()
        reason = "unknown node token" if found is None else found.refusal(
            parts[1], name=name, now=now)
        if reason is not None or found is None:
            raise UnauthorizedError(reason or "unknown node token")
        node_id = new_node_id(found.owner, name)
        secret, data_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.store.put_node(Node(
            id=node_id, owner=found.owner, name=name, cluster=cluster,
            platform=str(platform)[:64], credential_digest=digest(secret), data_key=data_key,
            enrolled_at=now))
        return {"node_id": node_id, "owner": found.owner, "data_key": data_key,
                "credential": f"{CREDENTIAL_PREFIX}.{node_id}.{secret}"}

    def authenticate(self, credential: str) -> Node:
        """The node a credential belongs to.

        Raises
        ------
        UnauthorizedError
            For a malformed, unknown or replaced credential.
        """
        parts = split_token(credential, CREDENTIAL_PREFIX)
        if parts is None:
            raise UnauthorizedError("malformed node credential")
        try:
            node = self.store.get_node(parts[0])
        except NotFoundError:
            raise UnauthorizedError("unknown node credential") from None
        if not matches(node.credential_digest, parts[1]):
            raise UnauthorizedError("node credential revoked or replaced; enroll the node again")
        return node

    def report(self, credential: str, body: dict[str, Any]) -> Node:
        """Store a node's inventory report and mark it seen now; return the node.

        Raises
        ------
        UnauthorizedError
            For a bad credential.
        FlopsError
            (422) For a malformed data set entry, saying which.
        """
        node = self.authenticate(credential)
        raw = list(body.get("datasets") or [])[:MAX_DATASETS]
        try:
            datasets = tuple(_clean_dataset(d) for d in raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise FlopsError(f"malformed data set entry in the report: {exc}",
                             code=ErrorCode.INVALID_REQUEST) from None
        changes = {"last_seen": self.clock(), "location": str(body["location"])[:256],
                   "datasets": datasets, "interval_s": float(body.get("interval_s") or 10.0),
                   "leaving": bool(body.get("leaving"))}
        if body.get("platform"):
            changes["platform"] = str(body["platform"])[:64]
        if body.get("cluster"):
            changes["cluster"] = _checked(str(body["cluster"]), "cluster")
        self.store.update_node(node.id, changes)
        return node
