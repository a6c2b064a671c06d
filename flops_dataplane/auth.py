"""Shared-token authentication for the Flight server (``authorization: Bearer <token>``)."""

from __future__ import annotations

import hmac
from typing import Any

import pyarrow.flight as flight

AUTH_HEADER = "authorization"


def bearer_header(token: str) -> tuple[bytes, bytes]:
    """Return the call header that carries ``token``."""
    return AUTH_HEADER.encode(), f"Bearer {token}".encode()


class TokenAuthMiddlewareFactory(flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Refuses every call that does not carry the configured bearer token.

    Parameters
    ----------
    token
        The shared secret; compared in constant time.
    """

    def __init__(self, token: str) -> None:
        super().__init__()
        self._expected = f"Bearer {token}".encode()

    def start_call(self, info: Any, headers: dict[str, list[Any]]) -> None:
        """Check the ``authorization`` header of an incoming call.

        Raises
        ------
        pyarrow.flight.FlightUnauthenticatedError
            If the header is missing or carries a wrong token.
        """
        values = headers.get(AUTH_HEADER) or []
        if not values:
            raise flight.FlightUnauthenticatedError(
                "missing 'authorization: Bearer <token>' header (set FLOPS_DATA_TOKEN)"
            )
        value = values[0]
        presented = value if isinstance(value, bytes) else str(value).encode()
        if not hmac.compare_digest(presented, self._expected):
            raise flight.FlightUnauthenticatedError("invalid data server token")
