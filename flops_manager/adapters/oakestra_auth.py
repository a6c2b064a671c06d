"""Authenticator that asks Oakestra whether a caller's JWT is valid.

The username comes from the unverified ``sub`` claim; Oakestra verifies the token when we call
``GET /api/permission/<username>`` with the caller's own ``Authorization`` header.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import quote

import requests

from flops_contracts.ids import is_identifier
from flops_manager.ports.auth import Authenticator
from flops_manager.ports.errors import BackendUnavailableError, UnauthorizedError


def jwt_subject(token: str) -> str:
    """Return the ``sub`` claim of a JWT without verifying it.

    Raises
    ------
    UnauthorizedError
        If the token is not a JWT with a usable subject.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise UnauthorizedError("token is not a JWT")
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError):
        raise UnauthorizedError("token payload is not readable") from None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(subject, str) or not is_identifier(subject):
        raise UnauthorizedError("token has no valid 'sub' claim")
    return subject


class OakestraAuthenticator(Authenticator):
    """Verifies tokens against Oakestra and caches successes for ``ttl_s`` seconds."""

    def __init__(self, base_url: str, *, ttl_s: float = 30.0, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()

    def authenticate(self, token: str, *, header: str) -> str:  # noqa: D102
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        user = jwt_subject(token)
        url = f"{self.base_url}/api/permission/{quote(user, safe='')}"
        try:
            response = self._session.get(
                url, headers={"Authorization": header}, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise BackendUnavailableError(f"Oakestra is unreachable: {exc}") from None
        if response.status_code == 200:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[token] = (user, now + self.ttl_s)
            return user
        if response.status_code in (401, 403, 404, 422):
            raise UnauthorizedError("Oakestra rejected the token")
        raise BackendUnavailableError(f"Oakestra answered {response.status_code}")
