"""REST API: one blueprint package per resource."""

from __future__ import annotations

from flask_smorest import Api

from flops_manager.api import (
    enroll,
    health,
    mock_data,
    models,
    nodes,
    projects,
    registry_token,
    tracking,
)

MODULES = (health, projects, models, mock_data, tracking, enroll, nodes, registry_token)


def register_blueprints(api: Api) -> None:
    """Register every resource's blueprint."""
    for module in MODULES:
        api.register_blueprint(module.blp)
    api.register_blueprint(nodes.agent_blp)
