"""Start-up shared by every component's ``python -m`` entry point."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from flops_contracts.config import ENV_PREFIX, load_settings
from flops_contracts.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


SECRETS_FILE_VAR = "FLOPS_SECRETS_FILE"


def load_secrets_file(environ: MutableMapping[str, str]) -> list[str]:
    """Add the variables of the JSON file named by ``FLOPS_SECRETS_FILE`` to ``environ``.

    Orchestrators that must not write credentials into their descriptors (an Oakestra SLA)
    hand components a file instead: ``{"FLOPS_DATA_TOKEN": "...", ...}``. Variables already
    set win. Returns the names added.

    Raises
    ------
    ConfigError
        If the file cannot be read or does not hold a JSON object of strings.
    """
    path = environ.get(SECRETS_FILE_VAR)
    if not path:
        return []
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {SECRETS_FILE_VAR}={path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{SECRETS_FILE_VAR}={path} is not valid JSON") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise ConfigError(f"{SECRETS_FILE_VAR}={path} must hold a JSON object of strings")
    added = [k for k in loaded if k not in environ]
    for name in added:
        environ[name] = loaded[name]
    return added


def start_component(model: type[M], *, prog: str, prefix: str = ENV_PREFIX) -> M:
    """Configure logging, add secrets from ``FLOPS_SECRETS_FILE``, load the settings.

    Raises
    ------
    SystemExit
        With code 2 and a message naming every invalid setting, when the configuration is bad.
    """
    logging.basicConfig(
        level=os.environ.get("FLOPS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    # Flower's logger has its own console handler; do not print each of its lines twice.
    logging.getLogger("flwr").propagate = False
    try:
        load_secrets_file(os.environ)
        return load_settings(model, prefix=prefix)
    except ConfigError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
