# mypy: disable-error-code="untyped-decorator"
"""Trained models of a project and their inference servers."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from flops_manager.api.common import iso
from flops_manager.api.context import current_user, services
from flops_manager.api.models import schemas
from flops_manager.api.models.schemas import MODEL_FIELDS
from flops_manager.api.openapi import DEPLOYMENT_LINKS, links
from flops_manager.ports.records import ServiceRecord

blp = Blueprint(
    "models", __name__, url_prefix="/api/v1/projects", description="Trained models and serving"
)


def _deployment(record: ServiceRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "project_id": record.project_id,
        "model_uri": record.request.get("model_uri"),
        "instances": record.request.get("instances", 1),
        "state": record.state,
        "address": record.address,
        "message": record.message,
        "created_at": iso(record.created_at),
    }


@blp.route("/<project_id>/models")
class Models(MethodView):
    """Models of a project."""

    @blp.response(200, schemas.ModelListSchema)
    def get(self, project_id: str) -> dict[str, Any]:
        """List the project's trained models."""
        found = services().models.list_models(project_id, owner=current_user())
        return {"items": [{k: m.get(k) for k in MODEL_FIELDS} for m in found]}


@blp.route("/<project_id>/deployments")
class Deployments(MethodView):
    """Inference servers of a project."""

    @blp.response(200, schemas.DeploymentListSchema)
    def get(self, project_id: str) -> dict[str, Any]:
        """List the project's inference deployments."""
        found = services().models.list_deployments(project_id, owner=current_user())
        return {"items": [_deployment(r) for r in found]}

    @blp.arguments(schemas.DeploymentCreateSchema)
    @blp.response(201, schemas.DeploymentSchema)
    @blp.doc(responses=links(201, DEPLOYMENT_LINKS, {"project_id": "$response.body#/project_id",
                                                     "deployment_id": "$response.body#/id"}))
    def post(self, body: dict[str, Any], project_id: str) -> dict[str, Any]:
        """Ask for an inference server for the project's model.

        The deployment starts in state ``requested``; the manager then creates the server
        (state ``pending``/``running`` and an ``address``) or records why it could not
        (state ``failed``, ``message``). Poll ``GET .../deployments/<id>``.
        """
        record = services().models.deploy(
            project_id, owner=current_user(), model_uri=body["model_uri"],
            instances=body["instances"],
        )
        return _deployment(record)


@blp.route("/<project_id>/deployments/<deployment_id>")
class Deployment(MethodView):
    """One deployment."""

    @blp.response(200, schemas.DeploymentSchema)
    def get(self, project_id: str, deployment_id: str) -> dict[str, Any]:
        """Return the deployment: its state, address and, if it failed, why."""
        return _deployment(
            services().models.get_deployment(project_id, deployment_id, owner=current_user())
        )

    @blp.response(202, schemas.DeploymentSchema)
    def delete(self, project_id: str, deployment_id: str) -> dict[str, Any]:
        """Remove the inference server (the manager removes it, then forgets the deployment)."""
        return _deployment(
            services().models.undeploy(project_id, deployment_id, owner=current_user())
        )
