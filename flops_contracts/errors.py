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
