"""Schemas of the tracking resource."""

from __future__ import annotations

from marshmallow import fields

from flops_manager.api.common import StrictSchema


class TrackingSchema(StrictSchema):
    """Where the MLflow tracking server is."""

    tracking_url = fields.String(required=True)
