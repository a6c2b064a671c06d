"""Schemas of trained models and inference deployments."""

from __future__ import annotations

from marshmallow import fields, validate

from flops_manager.api.common import StrictSchema


class ModelSchema(StrictSchema):
    """A trained model registered in MLflow."""

    model_uri = fields.String(allow_none=True)
    registered_model = fields.String(allow_none=True)
    model_version = fields.Raw(allow_none=True)
    registry_uri = fields.String(allow_none=True)
    mlflow_run_id = fields.String(allow_none=True)
    mlflow_experiment_id = fields.Raw(allow_none=True)


MODEL_FIELDS = tuple(ModelSchema().fields)


class ModelListSchema(StrictSchema):
    """A project's trained models."""

    items = fields.List(fields.Nested(ModelSchema), required=True)


class DeploymentCreateSchema(StrictSchema):
    """Body of ``POST .../deployments``."""

    model_uri = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(min=1, max=2048))
    instances = fields.Integer(load_default=1, validate=validate.Range(min=1, max=64))


class DeploymentSchema(StrictSchema):
    """An inference server deployment."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    project_id = fields.String(required=True)
    model_uri = fields.String(required=True)
    instances = fields.Integer(required=True)
    state = fields.String(
        required=True, metadata={"description": "requested, pending, running, stopped or failed"}
    )
    address = fields.String(allow_none=True)
    message = fields.String(allow_none=True, metadata={"description": "why it failed"})
    created_at = fields.String(required=True)


class DeploymentListSchema(StrictSchema):
    """A project's deployments."""

    items = fields.List(fields.Nested(DeploymentSchema), required=True)
