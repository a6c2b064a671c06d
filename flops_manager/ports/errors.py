"""Errors raised through ports, split as the reconciler needs them (temporary vs permanent)."""

from __future__ import annotations

from flops_contracts.errors import ErrorCode, FlopsError


class NotFoundError(FlopsError):
    """The requested object does not exist (or belongs to somebody else)."""

    default_code = ErrorCode.NOT_FOUND


class ConflictError(FlopsError):
    """A concurrent update or a duplicate key."""

    default_code = ErrorCode.CONFLICT


class InvalidTransitionError(FlopsError):
    """The requested operation does not apply in the project's current phase."""

    default_code = ErrorCode.INVALID_TRANSITION


class UnstorableError(FlopsError):
    """The store cannot encode what it was given (a key or number its format cannot hold)."""

    default_code = ErrorCode.INVALID_REQUEST


class BackendUnavailableError(FlopsError):
    """A backend (database, broker, orchestrator, identity provider) cannot be reached."""

    default_code = ErrorCode.BACKEND_UNAVAILABLE


class UnauthorizedError(FlopsError):
    """The caller did not present valid credentials."""

    default_code = ErrorCode.UNAUTHORIZED


class ForbiddenError(FlopsError):
    """The caller's credentials are valid but do not cover what it asked for."""

    default_code = ErrorCode.FORBIDDEN


class TemporaryError(BackendUnavailableError):
    """A failure worth retrying later (the reconciler backs off and retries)."""


class PermanentError(FlopsError):
    """A failure that retrying cannot fix (the reconciler fails the project)."""

    default_code = ErrorCode.INTERNAL
