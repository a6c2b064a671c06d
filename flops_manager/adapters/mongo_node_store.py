"""NodeStore on MongoDB: collections ``nodes`` (unique ``(owner, name)``) and ``node_tokens``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pymongo
from pymongo import ReturnDocument

from flops_manager.adapters.mongo_store import _translated
from flops_manager.nodes.model import Node, NodeToken
from flops_manager.ports.errors import NotFoundError
from flops_manager.ports.node_store import NodeStore


class MongoNodeStore(NodeStore):
    """Stores nodes and node tokens in database ``db_name`` at ``url``."""

    def __init__(self, url: str, *, db_name: str = "flops", timeout_ms: int = 3000) -> None:
        self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, tz_aware=False
        )
        db = self._client[db_name]
        self._nodes = db["nodes"]
        self._tokens = db["node_tokens"]
        self._initialised = False

    def _init(self) -> None:
        if not self._initialised:
            with _translated():
                self._nodes.create_index([("owner", 1), ("name", 1)], unique=True)
            self._initialised = True

    def put_token(self, token: NodeToken) -> None:  # noqa: D102
        doc = dataclasses.asdict(token)
        doc["_id"] = doc.pop("id")
        with _translated():
            self._tokens.insert_one(doc)

    def use_token(self, token_id: str) -> NodeToken | None:  # noqa: D102
        with _translated():
            doc = self._tokens.find_one_and_update(
                {"_id": token_id}, {"$set": {"used": True}},
                return_document=ReturnDocument.BEFORE)
        if doc is None:
            return None
        doc["id"] = doc.pop("_id")
        return NodeToken(**doc)

    def put_node(self, node: Node) -> None:  # noqa: D102
        self._init()
        with _translated():
            self._nodes.replace_one({"_id": node.id}, node.to_doc(), upsert=True)

    def get_node(self, node_id: str) -> Node:  # noqa: D102
        self._init()
        with _translated():
            doc = self._nodes.find_one({"_id": node_id})
        if doc is None:
            raise NotFoundError(f"node {node_id} not found")
        return Node.from_doc(doc)

    def find_node(self, owner: str, name: str) -> Node:  # noqa: D102
        self._init()
        with _translated():
            doc = self._nodes.find_one({"owner": owner, "name": name})
        if doc is None:
            raise NotFoundError(f"node {name!r} not found; see `flops node ls`")
        return Node.from_doc(doc)

    def list_nodes(self, owner: str) -> list[Node]:  # noqa: D102
        self._init()
        with _translated():
            docs = list(self._nodes.find({"owner": owner}).sort("name", 1))
        return [Node.from_doc(d) for d in docs]

    def update_node(self, node_id: str, changes: Mapping[str, Any]) -> bool:  # noqa: D102
        self._init()
        update = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
        with _translated():
            result = self._nodes.update_one({"_id": node_id}, {"$set": update})
        return bool(result.matched_count)

    def close(self) -> None:
        """Close the connection."""
        self._client.close()
