# mypy: disable-error-code="untyped-decorator"
"""The registry's token endpoint (Docker Registry token authentication)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from flops_manager.api.context import services
from flops_manager.identity.registry_server import Login

blp = Blueprint("registry_token", __name__, url_prefix="/api/v1/registry",
                description="Bearer tokens for the OCI registry (authenticated by a registry "
                            "login in Basic auth)")

PATH = "/api/v1/registry/token"


class TokenQuerySchema(ma.Schema):
    """What a registry client sends (unknown parameters such as ``client_id`` are ignored)."""

    class Meta:
        """Schema options."""

        unknown = ma.EXCLUDE

    service = fields.String(required=True, validate=validate.Length(min=1, max=256))
    scope = fields.List(fields.String(validate=validate.Length(max=1024)), load_default=list,
                        validate=validate.Length(max=32))
    account = fields.String(load_default="", validate=validate.Length(max=256))


class TokenResponseSchema(ma.Schema):
    """A registry bearer token."""

    token = fields.String(required=True)
    access_token = fields.String(required=True)
    expires_in = fields.Integer(required=True)
    issued_at = fields.String(required=True, metadata={"description": "RFC 3339"})


@blp.route("/token")
class RegistryToken(MethodView):
    """Token requests of registry clients (buildah, Docker engines, the registry client)."""

    @blp.doc(security=[])  # a registry login in Basic auth, not a user's bearer token
    @blp.arguments(TokenQuerySchema, location="query")
    @blp.response(200, TokenResponseSchema)
    @blp.alt_response(401, description="no login, or an unknown, expired or ended one")
    @blp.alt_response(422, description="another service or a malformed scope")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Return a short-lived token granting what the login may do of the requested scopes."""
        auth = request.authorization
        login = (Login(auth.username or "", auth.password or "")
                 if auth is not None and auth.type == "basic" else None)
        return services().registry_tokens.token(login, service=query["service"],
                                                scopes=query["scope"])
