"""The NodeStore port: enrolled FLOps nodes and the node tokens that enroll them."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from flops_manager.nodes.model import Node, NodeToken


class NodeStore(abc.ABC):
    """Persistence of nodes and node tokens.

    Constraints
    -----------
    * ``use_token`` MUST mark the token used atomically: of two concurrent calls for the same
      unused token, exactly one gets it back with ``used`` false.
    * ``find_node`` MUST raise ``NotFoundError`` for a name ``owner`` has no node of.
    """

    @abc.abstractmethod
    def put_token(self, token: NodeToken) -> None:
        """Store a new node token."""

    @abc.abstractmethod
    def use_token(self, token_id: str) -> NodeToken | None:
        """Mark the token used; return it as it was before (``None`` if unknown)."""

    @abc.abstractmethod
    def put_node(self, node: Node) -> None:
        """Insert or replace a node (by id)."""

    @abc.abstractmethod
    def get_node(self, node_id: str) -> Node:
        """Return the node; raise ``NotFoundError`` if missing."""

    @abc.abstractmethod
    def find_node(self, owner: str, name: str) -> Node:
        """Return ``owner``'s node ``name``; raise ``NotFoundError`` if there is none."""

    @abc.abstractmethod
    def list_nodes(self, owner: str) -> list[Node]:
        """Return ``owner``'s nodes, by name."""

    @abc.abstractmethod
    def update_node(self, node_id: str, changes: Mapping[str, Any]) -> bool:
        """Set only ``changes`` (field -> value) of a node; return whether it exists."""
