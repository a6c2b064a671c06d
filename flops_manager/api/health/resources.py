# mypy: disable-error-code="untyped-decorator"
"""Liveness (``/health``, no auth) and readiness (``/ready``)."""

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
