"""In-memory NodeStore (tests and throw-away runs); thread-safe behind one lock."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from flops_manager.nodes.model import Node, NodeToken
from flops_manager.ports.errors import NotFoundError
from flops_manager.ports.node_store import NodeStore


class MemoryNodeStore(NodeStore):
    """Keeps nodes and tokens in dictionaries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, NodeToken] = {}
        self._nodes: dict[str, Node] = {}

    def put_token(self, token: NodeToken) -> None:  # noqa: D102
        with self._lock:
            self._tokens[token.id] = token

    def use_token(self, token_id: str) -> NodeToken | None:  # noqa: D102
        with self._lock:
            found = self._tokens.get(token_id)
            if found is not None:
                self._tokens[token_id] = dataclasses.replace(found, used=True)
            return found

    def put_node(self, node: Node) -> None:  # noqa: D102
        with self._lock:
            self._nodes[node.id] = node

    def get_node(self, node_id: str) -> Node:  # noqa: D102
        with self._lock:
            found = self._nodes.get(node_id)
        if found is None:
            raise NotFoundError(f"node {node_id} not found")
        return found

    def find_node(self, owner: str, name: str) -> Node:  # noqa: D102
        with self._lock:
            for node in self._nodes.values():
                if node.owner == owner and node.name == name:
                    return node
        raise NotFoundError(f"node {name!r} not found; see `flops node ls`")

    def list_nodes(self, owner: str) -> list[Node]:  # noqa: D102
        with self._lock:
            return sorted((n for n in self._nodes.values() if n.owner == owner),
                          key=lambda n: n.name)

    def update_node(self, node_id: str, changes: Mapping[str, Any]) -> bool:  # noqa: D102
        with self._lock:
            found = self._nodes.get(node_id)
            if found is None:
                return False
            self._nodes[node_id] = dataclasses.replace(found, **changes)
            return True
