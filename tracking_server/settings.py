"""Settings of the tracking server and the ``mlflow server`` command line they translate to."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1")


class TrackingServerSettings(BaseModel):
    """``FLOPS_<FIELD>`` settings of the tracking server.

    Attributes
    ----------
    listen_address
        ``host:port`` to serve on (``FLOPS_LISTEN_ADDRESS``).
    data_dir
        Holds the SQLite run/model database and the artifacts (unless the URIs below are set).
    backend_store_uri, artifacts_destination
        Override the database (e.g. ``postgresql://...``) and the artifact store.
    allowed_hosts
        Host names the server answers to (MLflow rejects other ``Host`` headers with 403); the
        listen host and loopback names are always added.
    workers
        Server worker processes (1 keeps memory near 0.5 GB).
    auth
        Run MLflow's basic-auth app (``FLOPS_AUTH=true``): every request needs a login, and
        a login sees nothing it was not granted (``default_permission = NO_PERMISSIONS``).
        The admin login is created at first start from ``MLFLOW_AUTH_ADMIN_PASSWORD`` (at
        least 12 characters); its users live in ``auth.db`` in ``data_dir``.
    auth_admin_username
        Name of that admin login.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    listen_address: str = "127.0.0.1:5000"
    data_dir: Path = Path("mlflow-data")
    backend_store_uri: str | None = None
    artifacts_destination: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    workers: int = Field(1, ge=1, le=64)
    auth: bool = False
    auth_admin_username: str = "admin"

    @field_validator("listen_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port")
        return value


def server_argv(mlflow: str, settings: TrackingServerSettings) -> list[str]:
    """Return the ``mlflow server`` argument vector for ``settings`` (no shell involved)."""
    host, _, port = settings.listen_address.rpartition(":")
    store = settings.backend_store_uri or f"sqlite:///{settings.data_dir / 'mlflow.db'}"
    artifacts = settings.artifacts_destination or str(settings.data_dir / "mlartifacts")
    hosts = [*settings.allowed_hosts, *DEFAULT_ALLOWED_HOSTS, host]
    allowed = list(dict.fromkeys(
        h for name in hosts for h in ((name,) if ":" in name else (name, f"{name}:{port}"))
    ))
    return [
        mlflow, "server", "--host", host, "--port", port, "--workers", str(settings.workers),
        "--backend-store-uri", store, "--artifacts-destination", artifacts,
        "--allowed-hosts", ",".join(allowed),
        *(("--app-name", "basic-auth") if settings.auth else ()),
    ]


AUTH_CONFIG_FILE = "basic_auth.ini"


def auth_config(settings: TrackingServerSettings) -> str:
    """The basic-auth app's configuration file: deny by default, users in ``data_dir``."""
    return "\n".join([
        "[mlflow]",
        "default_permission = NO_PERMISSIONS",
        f"database_uri = sqlite:///{settings.data_dir / 'auth.db'}",
        f"admin_username = {settings.auth_admin_username}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access = false",
        "",
    ])


SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""Environment for a lean server (no job-execution workers: ~9 s start, ~0.5 GB)."""
