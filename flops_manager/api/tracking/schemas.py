"""Schemas of the tracking resource."""

from __future__ import annotations

from marshmallow import fields

from flops_manager.api.common import StrictSchema


class TrackingSchema(StrictSchema):
    """Where the MLflow tracking server is, and the caller's login when it checks logins."""

    tracking_url = fields.String(required=True)
    username = fields.String(metadata={
        "description": "the caller's MLflow login (absent: the server is open)"})
    password = fields.String(metadata={
        "description": "its password: the UI and MLFLOW_TRACKING_PASSWORD take it"})
