# mypy: disable-error-code="untyped-decorator"
"""Nodes: list and show (owner-scoped), node tokens, data grants; agent enrollment and reports."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from flops_manager.api.context import current_user, services
from flops_manager.api.nodes import schemas
from flops_manager.ports.errors import UnauthorizedError

blp = Blueprint("nodes", __name__, url_prefix="/api/v1/nodes",
                description="FLOps nodes (data servers where the data lives), owner-scoped")
agent_blp = Blueprint("node_agent", __name__, url_prefix="/api/v1/node-agent",
                      description="Node agents (authenticated by node token or credential)")

ENROLL_PATH = "/api/v1/node-agent/enroll"
REPORT_PATH = "/api/v1/node-agent/report"
AGENT_PATHS = frozenset({ENROLL_PATH, REPORT_PATH})


@blp.route("")
class Nodes(MethodView):
    """The caller's nodes."""

    @blp.response(200, schemas.NodeListSchema)
    def get(self) -> dict[str, Any]:
        """List the caller's nodes with their inventory."""
        return {"items": services().nodes.views(current_user())}


@blp.route("/<name>")
class NodeResource(MethodView):
    """One node."""

    @blp.response(200, schemas.NodeSchema)
    @blp.alt_response(404, description="no such node of the caller")
    def get(self, name: str) -> dict[str, Any]:
        """Return one of the caller's nodes."""
        return services().nodes.get(current_user(), name)


@blp.route("/<name>/token")
class NodeToken(MethodView):
    """Node tokens."""

    @blp.response(201, schemas.NodeTokenSchema)
    def post(self, name: str) -> dict[str, Any]:
        """Issue a single-use token (1 h) that enrolls a node agent under ``name``."""
        return services().nodes.issue_token(current_user(), name)


@blp.route("/<name>/data-grant")
class DataGrant(MethodView):
    """Data tokens for the node's data server."""

    @blp.arguments(schemas.DataGrantRequestSchema)
    @blp.response(200, schemas.DataGrantSchema)
    @blp.alt_response(404, description="no such node of the caller")
    def post(self, body: dict[str, Any], name: str) -> dict[str, Any]:
        """A short-lived token to read, write or drop data on the node, directly."""
        return services().nodes.data_grant(current_user(), name, ops=body["ops"],
                                           tags=body["tags"])


@agent_blp.route("/enroll")
class AgentEnroll(MethodView):
    """A node agent's first start."""

    @agent_blp.doc(security=[])
    @agent_blp.arguments(schemas.EnrollNodeSchema)
    @agent_blp.response(200, schemas.NodeCredentialsSchema)
    @agent_blp.alt_response(401, description="unknown, used, expired or mismatched node token")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Trade a node token (once) for the node's credential and data key."""
        return services().nodes.enroll(body["token"], name=body["name"],
                                       cluster=body["cluster"], platform=body["platform"])


@agent_blp.route("/report")
class AgentReport(MethodView):
    """A node agent's inventory."""

    @agent_blp.doc(security=[])
    @agent_blp.arguments(schemas.ReportSchema)
    @agent_blp.response(200, schemas.NodeListSchema)
    @agent_blp.alt_response(401, description="missing or bad 'Authorization: Node <credential>'")
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Report the node's data server address and data sets (header ``Node <credential>``)."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Node" or not credential.strip():
            raise UnauthorizedError("missing 'Authorization: Node <credential>' header")
        services().nodes.report(credential.strip(), body)
        return {"items": []}
