"""Authenticator with static API tokens (``FLOPS_API_TOKENS``), compared in constant time."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from flops_contracts.errors import ConfigError
from flops_manager.ports.auth import Authenticator
from flops_manager.ports.errors import UnauthorizedError


def parse_tokens(value: str | None) -> dict[str, str]:
    """Read ``{"token": "user"}`` from JSON text or from the file it names.

    Raises
    ------
    ConfigError
        If the value is neither, or maps to something else than strings.
    """
    if not value:
        return {}
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"FLOPS_API_TOKENS: cannot read {value}: {exc}") from None
    try:
        tokens = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"FLOPS_API_TOKENS is not valid JSON: {exc}") from None
    if not isinstance(tokens, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in tokens.items()
    ):
        raise ConfigError('FLOPS_API_TOKENS must be a JSON object {"token": "username"}')
    return dict(tokens)


class StaticTokenAuthenticator(Authenticator):
    """Maps known tokens to user names."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = [(t.encode(), user) for t, user in tokens.items()]

    def authenticate(self, token: str, *, header: str) -> str:  # noqa: D102
        given = token.encode()
        found: str | None = None
        for known, user in self._tokens:  # check every token: no early exit timing leak
            if hmac.compare_digest(known, given):
                found = user
        if found is None:
            raise UnauthorizedError("invalid API token")
        return found
