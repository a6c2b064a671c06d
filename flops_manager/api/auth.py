"""Bearer-token authentication for every endpoint except the open ones."""

from __future__ import annotations

from flask import Flask, g, request

from flops_manager.api.context import services
from flops_manager.api.enroll.resources import PATH as ENROLL_PATH
from flops_manager.api.nodes.resources import AGENT_PATHS
from flops_manager.api.registry_token.resources import PATH as REGISTRY_TOKEN_PATH
from flops_manager.ports.errors import UnauthorizedError

OPEN_PATHS = frozenset({"/", "/health", "/openapi.json", "/docs", ENROLL_PATH,
                        REGISTRY_TOKEN_PATH, *AGENT_PATHS})
"""Paths without a user token (enrollment, registry logins and node agents have their own)."""


def _authenticate() -> None:
    path = request.path
    if request.method == "OPTIONS" or path in OPEN_PATHS or path.startswith("/docs/"):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token.strip():
        raise UnauthorizedError("missing 'Authorization: Bearer <token>' header")
    g.flops_user = services().authenticator.authenticate(token.strip(), header=header)


def install_auth(app: Flask) -> None:
    """Require a valid bearer token before each request."""
    app.before_request(_authenticate)
