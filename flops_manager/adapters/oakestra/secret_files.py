"""Writes the secrets files that components on Oakestra read (I/O edge).

Secrets never go into an SLA (see :mod:`.sla`). When ``FLOPS_OAKESTRA_SECRETS_DIR`` names a
directory shared with the worker nodes (and mounted at ``FLOPS_OAKESTRA_SECRETS_MOUNT`` in
the containers), the backend writes ``<dir>/<application>/<microservice>.json`` =
``{"NAME": "value", ...}`` with mode 0600 before creating the service and deletes it with the
service. Without it, operators provision the same files themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path


class SecretFiles:
    """Secrets files below ``directory`` (nothing happens until a method is called)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, *, app_name: str, microservice: str) -> Path:
        """Return the file of one service."""
        return self.directory / app_name / f"{microservice}.json"

    def write(self, *, app_name: str, microservice: str, values: Mapping[str, str]) -> Path:
        """Write the secrets of one service atomically with mode 0600."""
        target = self.path(app_name=app_name, microservice=microservice)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = target.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(values), handle)
        os.replace(temporary, target)
        return target

    def remove(self, *, app_name: str, microservice: str) -> None:
        """Delete the secrets of one service (if any)."""
        with contextlib.suppress(FileNotFoundError):
            self.path(app_name=app_name, microservice=microservice).unlink()
