"""FLOps nodes: enrollment of node agents, their inventory and data-plane grants."""
