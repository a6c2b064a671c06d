"""Typed errors shared by all FLOps components."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class ErrorCode(enum.StrEnum):
    """Stable machine-readable error codes (rendered by the API and carried in events)."""

    INVALID_SPEC = "invalid_spec"
    INVALID_CONFIG = "invalid_config"
    INVALID_EVENT = "invalid_event"
    INVALID_REQUEST = "invalid_request"
    CONTRACT_VIOLATION = "contract_violation"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID_TRANSITION = "invalid_transition"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    TRAINING_FAILED = "training_failed"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"


class FlopsError(Exception):
    """Base class of every FLOps error.

    Parameters
    ----------
    message
        Human-readable explanation that says what to fix.
    code
        Machine-readable category.
    details
        Optional structured details (field errors, HTTP details, ...).
    """

    default_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable representation."""
        out: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class ConfigError(FlopsError):
    """A component's configuration is missing or invalid."""

    default_code = ErrorCode.INVALID_CONFIG


class ContractError(FlopsError):
    """A user repository does not implement the FLOps repository contract."""

    default_code = ErrorCode.CONTRACT_VIOLATION


class EventFormatError(FlopsError):
    """An event payload does not follow the event contract."""

    default_code = ErrorCode.INVALID_EVENT


class TrainingError(FlopsError):
    """Federated training could not complete (for example too few learners remained)."""

    default_code = ErrorCode.TRAINING_FAILED


class NotFoundError(FlopsError):
    """The requested object does not exist (or belongs to somebody else)."""

    default_code = ErrorCode.NOT_FOUND


class ConflictError(FlopsError):
    """A concurrent update or a duplicate key."""

    default_code = ErrorCode.CONFLICT


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
