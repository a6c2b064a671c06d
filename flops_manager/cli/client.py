"""A small client of the manager's REST API for the ``flops`` commands.

Where the API is: ``FLOPS_API_URL`` and ``FLOPS_API_TOKEN`` (a remote manager), else the
embedded stack started by ``flops up`` in the data directory (its URL and token file).
Tokens are never taken from the command line, where other users could read them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

from flops_contracts.errors import FlopsError
from flops_manager.cli import stack

TIMEOUT_S = 30.0


class ApiError(FlopsError):
    """The API answered with an error (the message is the API's own)."""


class ApiClient:
    """Calls ``/api/v1`` with a bearer token; every call has a timeout."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request to ``/api/v1/<path>`` and return the decoded JSON body.

        Raises
        ------
        ApiError
            For error answers (with the API's message) and when the manager is unreachable.
        """
        url = f"{self.base_url}/api/v1/{path.lstrip('/')}"
        try:
            response = requests.request(method, url, headers=self._headers,
                                        timeout=kwargs.pop("timeout", self.timeout_s), **kwargs)
        except requests.RequestException as exc:
            raise ApiError(f"cannot reach the FLOps manager at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(_error_message(response), details={"status": response.status_code})
        return response.json() if response.content else None

    def stream_events(self, project_id: str, *, after: int = 0) -> Iterator[dict[str, Any]]:
        """Yield the project's events (Server-Sent Events) until the server ends the stream."""
        url = f"{self.base_url}/api/v1/projects/{project_id}/events/stream"
        try:
            with requests.get(url, headers=self._headers, params={"after": after}, stream=True,
                              timeout=(self.timeout_s, 60)) as response:
                if response.status_code >= 400:
                    raise ApiError(_error_message(response))
                for line in response.iter_lines(decode_unicode=True):
                    if line and line.startswith("data: ") and '"seq"' in line:
                        yield dict(json.loads(line[len("data: "):]))
        except requests.RequestException as exc:
            raise ApiError(f"event stream interrupted: {exc}") from None


def field_errors(errors: object) -> dict[str, str]:
    """Flatten an error body's ``errors`` (``{location: {field: [messages]}}``, or fields)."""
    if not isinstance(errors, Mapping):
        return {}
    locations = [v for k, v in errors.items() if k in ("json", "query", "form", "path", "headers")
                 and isinstance(v, Mapping)] or [errors]
    return {str(field): ", ".join(map(str, text)) if isinstance(text, list) else str(text)
            for location in locations for field, text in location.items()}


def error_message(status: int, body: object) -> str:
    """One line for an API error body: its message, and each field's errors once."""
    if not isinstance(body, Mapping):
        return f"HTTP {status}: {str(body)[:300]}"
    message = str(body.get("message") or "")
    fields = field_errors(body.get("errors"))
    missing = "; ".join(f"{k}: {v}" for k, v in fields.items() if f"{k}: " not in message)
    if missing:
        message = f"{message or 'invalid request'}: {missing}"
    return f"HTTP {status}: {message or body.get('status') or 'error'}"


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    return error_message(response.status_code, body)


def connect(directory: Path | None = None, environ: Mapping[str, str] | None = None) -> ApiClient:
    """Return a client for ``FLOPS_API_URL``/``FLOPS_API_TOKEN`` or the embedded stack.

    Raises
    ------
    FlopsError
        If neither is available, saying how to fix it.
    """
    env = os.environ if environ is None else environ
    url, token = env.get("FLOPS_API_URL"), env.get("FLOPS_API_TOKEN")
    if url:
        if not token:
            raise FlopsError("FLOPS_API_URL is set but FLOPS_API_TOKEN is not")
        return ApiClient(url, token)
    where = stack.data_dir(directory)
    state = stack.read_state(where)
    if state is None or "api_url" not in state:
        raise FlopsError(
            f"no FLOps stack is running in {where}: run `flops up` (or set FLOPS_API_URL and "
            "FLOPS_API_TOKEN for a remote manager)"
        )
    return ApiClient(str(state["api_url"]), stack.api_token(where))
