"""``python -m tracking_server``: replace this process with a configured ``mlflow server``."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path

from flops_contracts.entrypoint import start_component
from tracking_server.settings import (
    AUTH_CONFIG_FILE,
    SERVER_ENV,
    TrackingServerSettings,
    auth_config,
    server_argv,
)


def mlflow_executable() -> str:
    """The ``mlflow`` command installed beside this interpreter (else the one on ``PATH``)."""
    beside = Path(sys.executable).with_name("mlflow")
    return str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")


def main() -> int:
    """Exec ``mlflow server``; exit 2 on bad settings."""
    settings = start_component(TrackingServerSettings, prog="flops-tracking-server")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    argv = server_argv(mlflow_executable(), settings)
    env = {**os.environ, **SERVER_ENV}
    if settings.auth:
        config = settings.data_dir / AUTH_CONFIG_FILE
        config.write_text(auth_config(settings))
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
        # CSRF protection of the login forms needs one key shared by every worker
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_urlsafe(32))
    os.execve(argv[0], argv, env)  # noqa: S606 - argv list, no shell


if __name__ == "__main__":
    sys.exit(main())
