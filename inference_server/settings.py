"""Configuration of the inference server (environment variables ``FLOPS_*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flops_contracts.ids import check_identifier

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


def split_host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6-host]:port``) into its parts.

    Parameters
    ----------
    address
        For example ``127.0.0.1:8080``, ``0.0.0.0:8080`` or ``[::1]:8080``.

    Returns
    -------
    tuple[str, int]
        The host (without brackets) and the port.

    Raises
    ------
    ValueError
        If there is no port, the port is not a number in 0-65535, or the host is empty.
    """
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"listen address {address!r} must be host:port, e.g. 127.0.0.1:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(
            f"listen address {address!r}: write IPv6 hosts in brackets, e.g. [::1]:8080"
        )
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen address {address!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def endpoint_url(host: str, port: int) -> str:
    """Return the base URL clients use for ``host`` and ``port``."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class InferenceSettings(BaseModel):
    """Everything one inference server process needs.

    Each field is set by the environment variable ``FLOPS_<FIELD NAME IN UPPER CASE>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_uri: str = Field(
        min_length=1,
        description="models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/PATH or a local path",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking and registry URI (default: MLflow's own default)"
    )
    listen_address: str = "127.0.0.1:8080"
    project_id: str = "local"
    instance: str = "inference-server"
    events_uri: str | None = None
    max_request_bytes: int = Field(DEFAULT_MAX_REQUEST_BYTES, ge=1)
    inference_threads: int = Field(
        2, ge=1, le=64, description="threads that parse, validate and predict requests"
    )
    max_concurrent_requests: int = Field(
        64, ge=1, description="open requests above this get HTTP 503 instead of queueing"
    )
    shutdown_timeout_s: float = Field(
        30.0, gt=0, description="how long SIGTERM waits for in-flight requests"
    )
    access_log: bool = False

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str) -> str:
        return check_identifier(value, what="project id")

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        return check_identifier(value, what="instance name")

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_host_port(value)
        return value.strip()

    @field_validator("model_uri")
    @classmethod
    def _model_uri(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("model URI is empty; use e.g. models:/NAME/VERSION")
        return value

    @field_validator("tracking_uri", "events_uri")
    @classmethod
    def _optional_uri(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @property
    def host(self) -> str:
        """Host part of :attr:`listen_address`."""
        return split_host_port(self.listen_address)[0]

    @property
    def port(self) -> int:
        """Port part of :attr:`listen_address`."""
        return split_host_port(self.listen_address)[1]
