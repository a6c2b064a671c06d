"""Typed errors of the Oakestra backend.

Every failed HTTP exchange becomes an :class:`OakestraTemporaryError` (worth retrying later:
timeouts, connection failures, 5xx) or an :class:`OakestraPermanentError` (4xx, malformed
answers); both carry the method, URL, status and an excerpt of the body. Invalid input to the
SLA generator raises :class:`InvalidSpecError` before anything is sent.
"""

from __future__ import annotations

from typing import Any

from flops_contracts.errors import ErrorCode
from flops_manager.ports.errors import PermanentError, TemporaryError

BODY_EXCERPT_CHARS = 300


def excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    """Return ``text`` shortened to ``limit`` characters for error messages."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(method: str, url: str, status: int | None, body: str, reason: str) -> str:
    where = f"{method} {url}"
    got = "no response" if status is None else f"HTTP {status}"
    tail = f": {excerpt(body)}" if body else ""
    return f"Oakestra {where} failed ({got}, {reason}){tail}"


class OakestraRequestError:
    """Mixin holding the details of a failed exchange with the root orchestrator.

    Attributes
    ----------
    method, url
        The request.
    status
        HTTP status, ``None`` when no response arrived.
    body
        Excerpt of the response body (never the request body, which may hold credentials).
    """

    method: str
    url: str
    status: int | None
    body: str

    def _init_request(self, method: str, url: str, status: int | None, body: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = excerpt(body)

    def request_details(self) -> dict[str, Any]:
        """Return the details as a JSON-serialisable dict."""
        return {"method": self.method, "url": self.url, "status": self.status, "body": self.body}


class OakestraTemporaryError(TemporaryError, OakestraRequestError):
    """A transient failure (timeout, connection error, 5xx): retry later."""

    def __init__(
        self, *, method: str, url: str, status: int | None, body: str = "", reason: str
    ) -> None:
        self._init_request(method, url, status, body)
        super().__init__(
            _describe(method, url, status, body, reason), details=self.request_details()
        )


class OakestraPermanentError(PermanentError, OakestraRequestError):
    """A failure retrying cannot fix (rejected request, bad credentials, malformed answer)."""

    def __init__(
        self,
        *,
        method: str,
        url: str,
        status: int | None,
        body: str = "",
        reason: str,
        code: ErrorCode | None = None,
    ) -> None:
        self._init_request(method, url, status, body)
        super().__init__(
            _describe(method, url, status, body, reason),
            code=code,
            details=self.request_details(),
        )


class OakestraAuthError(OakestraPermanentError):
    """Oakestra rejected the configured credentials."""

    default_code = ErrorCode.UNAUTHORIZED


class OakestraConflictError(OakestraPermanentError):
    """Oakestra reported a duplicate (HTTP 409)."""

    default_code = ErrorCode.CONFLICT


class InvalidSpecError(PermanentError):
    """A ServiceSpec cannot be expressed as a valid Oakestra SLA (nothing was sent)."""

    default_code = ErrorCode.INVALID_SPEC
