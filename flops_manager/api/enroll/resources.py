# mypy: disable-error-code="untyped-decorator"
"""Enrollment: a component trades its enrollment token for its working credentials."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from flops_manager.api.common import StrictSchema
from flops_manager.api.context import services

blp = Blueprint("enroll", __name__, url_prefix="/api/v1/enroll",
                description="Component enrollment (authenticated by the enrollment token)")

PATH = "/api/v1/enroll"


class EnrollRequestSchema(StrictSchema):
    """What a component presents."""

    token = fields.String(required=True, validate=validate.Length(min=1, max=512))
    project_id = fields.String(required=True, validate=validate.Length(max=128))
    role = fields.String(required=True, validate=validate.Length(max=64))
    instance = fields.String(load_default="", validate=validate.Length(max=256))


class EnrollResponseSchema(StrictSchema):
    """The instance's working credentials, as environment variables."""

    env = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


@blp.route("")
class Enroll(MethodView):
    """The one exchange of an enrollment token."""

    @blp.arguments(EnrollRequestSchema)
    @blp.response(200, EnrollResponseSchema)
    @blp.alt_response(401, description="unknown, expired, revoked or already used token")
    @blp.alt_response(403, description="token of another project or role, or the project ended")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Exchange an enrollment token (once per service instance) for working credentials."""
        env = services().enrollment.exchange(
            body["token"], project_id=body["project_id"], role=body["role"],
            instance=body["instance"],
        )
        return {"env": env}
