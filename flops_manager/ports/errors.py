"""Errors raised through ports.

The kinds every component shares (not found, conflict, temporary vs permanent, ...) are
defined once, in :mod:`flops_contracts.errors`, and imported here for the ports' callers;
this module adds only what is the manager's own.
"""

from __future__ import annotations

from flops_contracts.errors import (
    BackendUnavailableError,
    ConflictError,
    ErrorCode,
    FlopsError,
    ForbiddenError,
    NotFoundError,
    PermanentError,
    TemporaryError,
    UnauthorizedError,
)

__all__ = [
    "BackendUnavailableError",
    "ConflictError",
    "ForbiddenError",
    "InvalidTransitionError",
    "NotFoundError",
    "PermanentError",
    "TemporaryError",
    "UnauthorizedError",
    "UnstorableError",
]


class InvalidTransitionError(FlopsError):
    """The requested operation does not apply in the project's current phase."""

    default_code = ErrorCode.INVALID_TRANSITION


class UnstorableError(FlopsError):
    """The store cannot encode what it was given (a key or number its format cannot hold)."""

    default_code = ErrorCode.INVALID_REQUEST
