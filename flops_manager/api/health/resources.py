# mypy: disable-error-code="untyped-decorator"
"""The index (``/``), liveness (``/health``; both without auth) and readiness (``/ready``)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from flops_manager.api.common import StrictSchema
from flops_manager.api.context import services
from flops_manager.ports.errors import BackendUnavailableError
from flops_manager.services.readiness import check_ready

blp = Blueprint("health", __name__, url_prefix="/", description="Liveness and readiness")


class StatusSchema(StrictSchema):
    """A status answer."""

    status = fields.String(required=True)


class IndexSchema(StrictSchema):
    """Where things are."""

    name = fields.String(required=True)
    docs = fields.String(required=True, metadata={"description": "interactive API docs"})
    openapi = fields.String(required=True)
    api = fields.String(required=True, metadata={"description": "the REST API's prefix"})
    health = fields.String(required=True)
    ready = fields.String(required=True)
    auth = fields.String(required=True)


INDEX = {
    "name": "FLOps manager",
    "docs": "/docs",
    "openapi": "/openapi.json",
    "api": "/api/v1",
    "health": "/health",
    "ready": "/ready",
    "auth": "send 'Authorization: Bearer <token>' to /api/v1 and /ready",
}


@blp.route("/")
class Index(MethodView):
    """The index."""

    @blp.response(200, IndexSchema)
    @blp.doc(security=[])
    def get(self) -> dict[str, Any]:
        """Links to the docs, the OpenAPI document and the API (no token needed)."""
        return INDEX


@blp.route("/health")
class Health(MethodView):
    """Liveness."""

    @blp.response(200, StatusSchema)
    @blp.doc(security=[])
    def get(self) -> dict[str, Any]:
        """Answer while the process runs."""
        return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    """Readiness."""

    @blp.response(200, StatusSchema)
    @blp.alt_response(503, response="DEFAULT_ERROR", description="database or broker unreachable")
    def get(self) -> dict[str, Any]:
        """Answer 200 when the database and the broker are reachable, else 503 with reasons."""
        found = services()
        problems = check_ready(found.store, found.events)
        if problems:
            raise BackendUnavailableError(
                "not ready: " + "; ".join(f"{k}: {v}" for k, v in problems.items()),
                details={"errors": problems},
            )
        return {"status": "ready"}
