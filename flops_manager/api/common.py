"""Schemas and helpers shared by several resources."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate


def iso(ts: float | None) -> str | None:
    """Render epoch seconds as an ISO 8601 UTC string."""
    if ts is None:
        return None
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StrictSchema(ma.Schema):
    """Rejects unknown fields (marshmallow RAISE)."""

    class Meta:
        """Schema options."""

        unknown = ma.RAISE


class SpecField(fields.Dict):
    """The project spec: validated by pydantic, documented by its JSON schema."""


def spec_attribute(self: Any, field: fields.Field[Any], ret: dict[str, Any]) -> dict[str, Any]:
    """Apispec attribute function: point ``SpecField`` at the ProjectSpec component."""
    if isinstance(field, SpecField):
        ret.pop("type", None)
        ret.pop("additionalProperties", None)
        return {"$ref": "#/components/schemas/ProjectSpec"}
    return {}


class ErrorSchema(ma.Schema):
    """The one error shape."""

    code = fields.Integer(required=True, metadata={"description": "HTTP status"})
    status = fields.String(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "per-location, per-field messages"})


PAGE = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
PAGE_SIZE = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))
