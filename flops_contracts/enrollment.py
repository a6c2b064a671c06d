"""Component side of enrollment: trade the enrollment token for working credentials, once.

The orchestrator starts a component with four plain variables (the only channel every backend
has, an Oakestra SLA included): ``FLOPS_ENROLL_URL`` (the manager), ``FLOPS_ENROLL_PROJECT``,
``FLOPS_ENROLL_ROLE`` and ``FLOPS_ENROLL_TOKEN`` (single-use per instance, short-lived, bound to
one project and role). At start the component posts the token to ``<url>/api/v1/enroll`` and
receives its working credentials as variables (broker login, data-plane token, registry login,
MLflow login: whatever its role needs), which are added to its environment; the token is then
removed. Only ``FLOPS_*`` variables and MLflow's own login variables
(:data:`CREDENTIAL_VARS`) are taken: an answer cannot set ``PATH``, ``LD_PRELOAD`` or the like.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, MutableMapping
from typing import Any

from flops_contracts.errors import ConfigError

ENROLL_TOKEN_VAR = "FLOPS_ENROLL_TOKEN"  # noqa: S105 - a variable name, not a secret
ENROLL_URL_VAR = "FLOPS_ENROLL_URL"
ENROLL_ROLE_VAR = "FLOPS_ENROLL_ROLE"
ENROLL_PROJECT_VAR = "FLOPS_ENROLL_PROJECT"
ENROLL_TIMEOUT_VAR = "FLOPS_ENROLL_TIMEOUT_S"
ENROLL_PATH = "/api/v1/enroll"
DEFAULT_TIMEOUT_S = 60.0
MAX_ANSWER_BYTES = 64 * 1024
TRACKING_USERNAME_VAR = "MLFLOW_TRACKING_USERNAME"
TRACKING_PASSWORD_VAR = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - the variable's name
CREDENTIAL_VARS = frozenset({TRACKING_USERNAME_VAR, TRACKING_PASSWORD_VAR})
"""Variables outside ``FLOPS_*`` an enrollment answer may set: the MLflow client's login."""

log = logging.getLogger(__name__)

Post = Callable[[str, bytes], tuple[int, bytes]]
"""(url, JSON body) -> (HTTP status, body); raises ``OSError`` when the manager is unreachable."""


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - enroll() accepts http(s) URLs only
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http(s) only
            return int(answer.status), answer.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(MAX_ANSWER_BYTES)


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return ""


def _credentials(body: bytes) -> dict[str, str]:
    try:
        answer: Any = json.loads(body)
    except ValueError:
        raise ConfigError("enrollment answer is not JSON") from None
    env = answer.get("env") if isinstance(answer, dict) else None
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ConfigError("enrollment answer holds no variables (an 'env' object of strings)")
    others = sorted(k for k in env if not k.startswith("FLOPS_") and k not in CREDENTIAL_VARS)
    if others:
        raise ConfigError("enrollment answer sets variables a component does not take: "
                          f"{', '.join(others)[:200]} (only FLOPS_* and "
                          f"{', '.join(sorted(CREDENTIAL_VARS))})")
    return env


def enroll(
    environ: MutableMapping[str, str],
    *,
    post: Post = _post,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Exchange ``FLOPS_ENROLL_TOKEN`` for working credentials, added to ``environ``.

    Does nothing without a token. Retries while the manager is unreachable or answers 5xx,
    for ``FLOPS_ENROLL_TIMEOUT_S`` (60 s). Returns the names of the variables added.

    Raises
    ------
    ConfigError
        If the manager refuses the token (the message says why) or cannot be reached in time.
    """
    token = environ.pop(ENROLL_TOKEN_VAR, "")
    if not token:
        return []
    base = environ.get(ENROLL_URL_VAR, "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"{ENROLL_URL_VAR} must be the manager's http(s) URL")
    body = json.dumps({
        "token": token,
        "project_id": environ.get(ENROLL_PROJECT_VAR, ""),
        "role": environ.get(ENROLL_ROLE_VAR, ""),
        "instance": environ.get("FLOPS_INSTANCE", ""),
    }).encode()
    try:
        timeout = float(environ.get(ENROLL_TIMEOUT_VAR) or DEFAULT_TIMEOUT_S)
    except ValueError:
        raise ConfigError(f"{ENROLL_TIMEOUT_VAR} must be a number") from None
    deadline = clock() + timeout
    while True:
        try:
            status, answer = post(base + ENROLL_PATH, body)
        except OSError as exc:
            status, answer, problem = 0, b"", f"manager unreachable ({exc})"
        else:
            problem = f"HTTP {status} {_message(answer)}".strip()
        if status == 200:
            env = _credentials(answer)
            environ.update(env)
            log.info("enrolled with the manager: %d credentials", len(env))
            return sorted(env)
        if 400 <= status < 500:
            raise ConfigError(f"enrollment refused by the manager: {problem}")
        if clock() >= deadline:
            raise ConfigError(f"enrollment at {base} failed: {problem}")
        sleep(1.0)
