"""Keyset cursors for listing projects newest first.

A cursor names the last project of a page by its sort key ``(created_at, id)``; the next page
holds the projects strictly older in that order. Unlike ``skip``, a store answers it from the
``(owner, created_at)`` index however deep the page, and a project created meanwhile never
shifts a page. On the wire a cursor is an opaque URL-safe string.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json

from flops_contracts.errors import ErrorCode, FlopsError


@dataclasses.dataclass(frozen=True, order=True)
class Cursor:
    """The sort key of the last item of a page: ``(created_at, id)``, newest first."""

    created_at: float
    id: str

    def precedes(self, created_at: float, item_id: str) -> bool:
        """Whether an item with this sort key comes after the cursor (is older)."""
        return (created_at, item_id) < (self.created_at, self.id)


def encode_cursor(cursor: Cursor) -> str:
    """Render ``cursor`` as an opaque URL-safe token."""
    raw = json.dumps([cursor.created_at, cursor.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """Parse a token made by :func:`encode_cursor`.

    Raises
    ------
    FlopsError
        Code ``invalid_request`` when the token was not made by :func:`encode_cursor`.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_at, item_id = json.loads(raw)
        if not isinstance(item_id, str) or isinstance(created_at, bool):
            raise TypeError(item_id)
        return Cursor(float(created_at), item_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise FlopsError(
            "cursor: not a cursor returned by this API (pass next_cursor unchanged)",
            code=ErrorCode.INVALID_REQUEST,
            details={"errors": {"cursor": ["not a cursor returned by this API"]}},
        ) from None
