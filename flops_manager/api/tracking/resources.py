# mypy: disable-error-code="untyped-decorator"
"""Tracking: the browser-reachable URL of the MLflow tracking server."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from flops_manager.api.context import services
from flops_manager.api.tracking.schemas import TrackingSchema
from flops_manager.ports.errors import BackendUnavailableError

blp = Blueprint("tracking", __name__, url_prefix="/api/v1/tracking", description="MLflow")


@blp.route("")
class Tracking(MethodView):
    """The tracking server."""

    @blp.response(200, TrackingSchema)
    def get(self) -> dict[str, str]:
        """Return the MLflow tracking server URL for browsers."""
        url = services().settings.mlflow_public_url
        if not url:
            raise BackendUnavailableError("no tracking server is configured")
        return {"tracking_url": url}
