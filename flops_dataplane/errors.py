"""Errors raised by the data plane's client side.

Each one is also the shared kind it is (:mod:`flops_contracts.errors`), so a caller can catch
``NotFoundError`` or ``UnauthorizedError`` whether the data plane or a manager port raised it.
"""

from __future__ import annotations

from flops_contracts.errors import (
    ConflictError,
    ErrorCode,
    FlopsError,
    NotFoundError,
    UnauthorizedError,
)


class DataPlaneError(FlopsError):
    """A data-plane request failed (bad request, unreachable server, refused token, ...)."""

    default_code = ErrorCode.BACKEND_UNAVAILABLE


class DataAuthError(DataPlaneError, UnauthorizedError):
    """The data server refused the token (missing or wrong ``FLOPS_DATA_TOKEN``)."""

    default_code = ErrorCode.UNAUTHORIZED


class DatasetExistsError(DataPlaneError, ConflictError):
    """An upload named a data set that exists and did not ask to replace it."""

    default_code = ErrorCode.CONFLICT


class NoDataError(DataPlaneError, NotFoundError):
    """No data set matches the requested tags."""

    default_code = ErrorCode.NOT_FOUND


class SchemaMismatchError(DataPlaneError, ConflictError):
    """Data sets that should be read together have different schemas."""

    default_code = ErrorCode.CONFLICT


class SourceError(FlopsError):
    """A mock-provider data source cannot be loaded."""

    default_code = ErrorCode.INVALID_CONFIG
