"""Schemas of the mock data provider resource."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from flops_contracts.ids import is_identifier
from flops_manager.api.common import StrictSchema

_SERVER = validate.Regexp(r"^[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$", error="use host:port")
_DATASET = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$", error="invalid dataset name")


def _tag(value: str) -> None:
    if not is_identifier(value):
        raise ValidationError("use letters, digits, '_', '.', '-' (1-63 characters)")


class MockDataCreateSchema(StrictSchema):
    """Body of ``POST /mock-data-providers``."""

    dataset = fields.String(required=True, validate=_DATASET)
    partitions = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))
    partitioner = fields.String(load_default="iid", validate=validate.OneOf(["iid", "dirichlet"]))
    alpha = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=0, min_inclusive=False,
                                                                    max=1e6)
    )
    seed = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))
    tag = fields.String(required=True, validate=_tag)
    servers = fields.List(
        fields.String(validate=_SERVER), required=True, validate=validate.Length(min=1, max=100)
    )

    @validates_schema
    def _alpha_for_dirichlet(self, data: dict[str, object], **kwargs: object) -> None:
        if data.get("partitioner") == "dirichlet" and data.get("alpha") is None:
            raise ValidationError("the dirichlet partitioner needs alpha", field_name="alpha")


class MockDataSchema(StrictSchema):
    """A mock data provider."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    state = fields.String(required=True)
    request = fields.Dict(required=True)
    created_at = fields.String(required=True)


class MockDataListSchema(StrictSchema):
    """The caller's mock data providers."""

    items = fields.List(fields.Nested(MockDataSchema), required=True)
