"""Settings of the ML data server (environment variables ``FLOPS_DATA_*`` or a JSON file)."""

from __future__ import annotations

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flops_contracts.ids import check_identifier

SERVER_ENV_PREFIX = "FLOPS_DATA_"
TOKEN_ENV_VAR = "FLOPS_DATA_TOKEN"  # noqa: S105 - a variable name, not a secret


def bearer(token: str | None) -> str | None:
    """The ``authorization`` value a data client sends, or ``None`` for no header.

    ``token`` defaults (when ``None``) to ``FLOPS_DATA_TOKEN``; empty means no token.
    """
    token = token if token is not None else os.environ.get(TOKEN_ENV_VAR)
    return f"Bearer {token}" if token else None


class DataServerSettings(BaseModel):
    """ML data server settings, read with prefix ``FLOPS_DATA_`` (e.g. ``FLOPS_DATA_ROOT_DIR``).

    Attributes
    ----------
    root_dir
        Directory holding the data sets (``FLOPS_DATA_ROOT_DIR``).
    host, port
        Bind address; loopback by default, port 0 picks a free port (``FLOPS_DATA_HOST``,
        ``FLOPS_DATA_PORT``).
    listen_address
        ``host:port`` overriding ``host`` and ``port`` (``FLOPS_DATA_LISTEN_ADDRESS``; set by
        orchestrator backends).
    token
        Shared token every request must carry as ``authorization: Bearer <token>``
        (``FLOPS_DATA_TOKEN``); no authentication when unset.
    project_id, instance, events_uri
        Identity and destination of status events (``FLOPS_DATA_EVENTS_URI``; empty = log only).
    """

    model_config = ConfigDict(extra="forbid")

    root_dir: str = Field(..., description="directory holding the data sets")
    host: str = "127.0.0.1"
    port: int = Field(11027, ge=0, le=65535)
    listen_address: str | None = None
    token: str | None = None
    project_id: str = "local"
    instance: str = "data-server"
    events_uri: str | None = None

    @field_validator("project_id", "instance")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return check_identifier(value, what="identifier")

    @model_validator(mode="after")
    def _split_listen_address(self) -> Self:
        if self.listen_address:
            host, sep, port = self.listen_address.rpartition(":")
            if not sep or not host or not port.isdigit() or int(port) > 65535:
                raise ValueError(
                    f"listen_address {self.listen_address!r} is not host:port"
                )
            self.host, self.port = host, int(port)
        return self

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return value or None
