"""``python -m tracking_server``: replace this process with a configured ``mlflow server``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from flops_contracts.entrypoint import start_component
from tracking_server.settings import SERVER_ENV, TrackingServerSettings, server_argv


def mlflow_executable() -> str:
    """The ``mlflow`` command installed beside this interpreter (else the one on ``PATH``)."""
    beside = Path(sys.executable).with_name("mlflow")
    return str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")


def main() -> int:
    """Exec ``mlflow server``; exit 2 on bad settings."""
    settings = start_component(TrackingServerSettings, prog="flops-tracking-server")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    argv = server_argv(mlflow_executable(), settings)
    os.execve(argv[0], argv, {**os.environ, **SERVER_ENV})  # noqa: S606 - argv list, no shell


if __name__ == "__main__":
    sys.exit(main())
