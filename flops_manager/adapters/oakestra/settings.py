"""Settings of the Oakestra backend and the builder the registry calls.

The URI names the root orchestrator: ``oakestra://host[:port]`` (HTTP) or
``oakestra+https://host[:port]`` (HTTPS); the port defaults to 10000. Everything else comes
from ``FLOPS_OAKESTRA_<FIELD>`` environment variables (see :class:`OakestraSettings`).
Credentials never go into the URI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from flops_contracts.config import load_settings
from flops_contracts.errors import ConfigError
from flops_manager.adapters.oakestra.addresses import DEFAULT_SUBNET, AddressPool, parse_subnet
from flops_manager.adapters.oakestra.sla import SlaOptions
from flops_manager.adapters.oakestra.versions import CURRENT, OakestraVersion

if TYPE_CHECKING:
    from flops_manager.ports.orchestrator import Orchestrator
    from flops_manager.settings import Settings

ENV_PREFIX = "FLOPS_OAKESTRA_"
DEFAULT_PORT = 10000
SCHEMES = {"oakestra": "http", "oakestra+https": "https"}


class OakestraSettings(BaseModel):
    """Frozen settings; field ``x`` is set by ``FLOPS_OAKESTRA_X`` (``base_url`` by the URI)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    base_url: str = Field("", description="set from the orchestrator URI")
    username: str = Field(min_length=1)
    password: SecretStr
    organization: str | None = Field(None, description="organization_name sent at login")
    version: OakestraVersion = CURRENT
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=20, description="extra attempts for transient failures")
    backoff_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)
    verify_tls: bool = True
    ca_bundle: str | None = Field(None, description="CA file for oakestra+https")
    token_refresh_margin_s: float = Field(60.0, ge=0)
    namespace: str = Field("flops", pattern=r"^[a-zA-Z0-9]{1,30}$")
    addons: dict[str, list[str]] = Field(
        default_factory=dict,
        description='node addons per role, e.g. {"builder": ["image-builder"]}',
    )
    create_attempts: int = Field(3, ge=1, le=10, description="round-robin addresses tried")
    rr_subnet: str = Field(
        DEFAULT_SUBNET,
        description="subnet of the round-robin service IPs (Oakestra's service subnet); the "
        "backend allocates from its upper half. Single-host test installations use a loopback "
        "range such as 127.30.0.0/16",
    )
    allow_environment_images: bool = Field(
        False,
        description="accept env://<dir> images (FLOPS_BUILD_TARGET=environment): only for "
        "single-host test installations whose workers share this file system",
    )

    @field_validator("rr_subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        return str(parse_subnet(value))

    def address_pool(self) -> AddressPool:
        """Return the pool of round-robin addresses."""
        return AddressPool(self.rr_subnet)

    @property
    def verify(self) -> bool | str:
        """The ``verify`` argument for requests."""
        if not self.verify_tls:
            return False
        return self.ca_bundle or True

    def sla_options(self) -> SlaOptions:
        """Return the options of the SLA generator."""
        return SlaOptions(
            version=self.version,
            namespace=self.namespace,
            addons={role: tuple(values) for role, values in self.addons.items()},
            allow_environment_images=self.allow_environment_images,
        )


def base_url_from_uri(uri: str) -> str:
    """Return the root orchestrator's base URL named by ``uri``.

    Raises
    ------
    ConfigError
        For another scheme, a missing host, credentials, a path, query or fragment.
    """
    parts = urlsplit(uri)
    scheme = SCHEMES.get(parts.scheme)
    if scheme is None:
        raise ConfigError(f"{uri!r}: use oakestra://host:port or oakestra+https://host:port")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "do not put credentials in the orchestrator URI; set "
            f"{ENV_PREFIX}USERNAME and {ENV_PREFIX}PASSWORD"
        )
    if not parts.hostname:
        raise ConfigError(f"{uri!r} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{uri!r}: the root orchestrator URI takes no path or query")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"{uri!r} has an invalid port") from None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def load_oakestra_settings(
    uri: str, environ: Mapping[str, str] | None = None
) -> OakestraSettings:
    """Read the settings for ``uri`` from ``FLOPS_OAKESTRA_*`` variables.

    Raises
    ------
    ConfigError
        Naming every missing or invalid variable, or the problem with ``uri``.
    """
    base_url = base_url_from_uri(uri)
    loaded = load_settings(OakestraSettings, environ=environ, prefix=ENV_PREFIX)
    values: dict[str, Any] = {**loaded.model_dump(), "base_url": base_url}
    return OakestraSettings.model_validate(values)


def build_oakestra_orchestrator(uri: str, settings: Settings) -> Orchestrator:
    """Build the Oakestra backend for ``FLOPS_ORCHESTRATOR_URI=uri`` (no I/O happens here).

    Parameters
    ----------
    uri
        ``oakestra://host:port`` or ``oakestra+https://host:port``.
    settings
        The manager settings (unused: the backend reads ``FLOPS_OAKESTRA_*``).
    """
    from flops_manager.adapters.oakestra.client import RootOrchestratorClient
    from flops_manager.adapters.oakestra.orchestrator import OakestraOrchestrator

    del settings
    oak = load_oakestra_settings(uri)
    return OakestraOrchestrator(RootOrchestratorClient(oak), oak)
