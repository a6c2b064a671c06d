"""FLOps nodes: owner-scoped listing, node tokens, data grants, and the agents' endpoints."""

from flops_manager.api.nodes.resources import agent_blp, blp

__all__ = ["agent_blp", "blp"]
