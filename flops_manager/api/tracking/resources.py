# mypy: disable-error-code="untyped-decorator"
"""Tracking: the browser-reachable URL of the MLflow tracking server and the caller's login."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from flops_manager.api.context import current_user, services
from flops_manager.api.tracking.schemas import TrackingSchema
from flops_manager.ports.errors import BackendUnavailableError

blp = Blueprint("tracking", __name__, url_prefix="/api/v1/tracking", description="MLflow")


@blp.route("")
class Tracking(MethodView):
    """The tracking server."""

    @blp.response(200, TrackingSchema)
    def get(self) -> dict[str, str]:
        """Return the MLflow tracking server URL for browsers, and the caller's MLflow login.

        When MLflow checks logins, the caller's own login (created on first use) is returned:
        it can read and manage only the experiments and models of the caller's projects.
        """
        found = services()
        url = found.settings.mlflow_public_url
        if not url:
            raise BackendUnavailableError("no tracking server is configured")
        login = found.enrollment.tracking.owner_login(current_user())
        return {"tracking_url": url, **(login or {})}
