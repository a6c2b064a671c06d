"""Error catalogue (ErrorCode -> HTTP status) and the one JSON error shape.

Every error body is ``{"code": <HTTP status>, "status": <reason phrase>, "message": ...,
"errors": {...}?}``, the shape flask-smorest uses for its own errors.
"""

from __future__ import annotations

import dataclasses
import http
import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from flops_contracts.errors import ErrorCode, FlopsError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ApiErrorSpec:
    """How an error code is shown to API clients."""

    status: int
    public_message: str | None = None
    """Replaces the internal message when set (for errors whose detail must not leak)."""


CATALOG: dict[ErrorCode, ApiErrorSpec] = {
    ErrorCode.INVALID_SPEC: ApiErrorSpec(422),
    ErrorCode.INVALID_CONFIG: ApiErrorSpec(500, "the manager is misconfigured"),
    ErrorCode.INVALID_EVENT: ApiErrorSpec(422),
    ErrorCode.INVALID_REQUEST: ApiErrorSpec(422),
    ErrorCode.CONTRACT_VIOLATION: ApiErrorSpec(422),
    ErrorCode.NOT_FOUND: ApiErrorSpec(404),
    ErrorCode.CONFLICT: ApiErrorSpec(409),
    ErrorCode.INVALID_TRANSITION: ApiErrorSpec(409),
    ErrorCode.BACKEND_UNAVAILABLE: ApiErrorSpec(503),
    ErrorCode.TRAINING_FAILED: ApiErrorSpec(409),
    ErrorCode.UNAUTHORIZED: ApiErrorSpec(401),
    ErrorCode.FORBIDDEN: ApiErrorSpec(403),
    ErrorCode.RATE_LIMITED: ApiErrorSpec(429),
    ErrorCode.INTERNAL: ApiErrorSpec(500, "internal error"),
}


def error_body(status: int, message: str, errors: Any = None) -> dict[str, Any]:
    """Return the error JSON for ``status``."""
    body: dict[str, Any] = {
        "code": status,
        "status": http.HTTPStatus(status).phrase,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    return body


def render_flops_error(exc: FlopsError) -> tuple[Response, int]:
    """Render ``exc`` through the catalogue."""
    spec = CATALOG.get(exc.code, CATALOG[ErrorCode.INTERNAL])
    if spec.status >= 500:
        log.error("request failed: %s (%s)", exc.message, exc.code)
    errors = exc.details.get("errors")
    if spec.status == 422 and isinstance(errors, dict):
        errors = {"json": errors}
    message = spec.public_message or exc.message
    response = jsonify(error_body(spec.status, message, errors))
    if spec.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="flops"'
    if "retry_after" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after"])
    return response, spec.status


def _render_unexpected(exc: Exception) -> tuple[Response, int]:
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        return jsonify(error_body(code, exc.description or "")), code
    log.exception("unexpected error")
    return jsonify(error_body(500, "internal error")), 500


def register_error_handlers(app: Flask) -> None:
    """Render FlopsErrors and unexpected exceptions in the common shape."""
    app.register_error_handler(FlopsError, render_flops_error)
    app.register_error_handler(Exception, _render_unexpected)
