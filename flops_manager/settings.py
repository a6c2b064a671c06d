"""Manager settings, read once from ``FLOPS_<FIELD>`` environment variables (or a JSON file)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flops_contracts.config import load_settings
from flops_manager.lifecycle.state import TERMINAL_PHASES, Phase

SWAGGER_UI_ASSETS = "/docs/static/"
"""Where the manager serves its vendored Swagger UI (:mod:`flops_manager.api.docs_assets`)."""

TIMED_PHASES = tuple(p for p in Phase if p not in TERMINAL_PHASES and p is not Phase.SUBMITTED)
"""Phases a timeout can limit (a submitted project starts building at once)."""

DEFAULT_TIMEOUTS: Mapping[Phase, float | None] = {
    Phase.BUILDING: 3600.0,
    Phase.DEPLOYING: 1800.0,
    Phase.TRAINING: 86400.0,
    Phase.POST_TRAINING: 3600.0,
}
"""Seconds a project may stay in each phase (a phase not named has no limit)."""


def merge_phase_timeouts(given: Any) -> dict[Phase, float | None]:
    """Return the default timeouts overridden by ``given`` (``{phase: seconds or null}``).

    ``null`` removes a phase's limit. Only the keys given change; the others keep their
    defaults.

    Raises
    ------
    ValueError
        If ``given`` is not an object or names something that is not a timed phase.
    """
    if not isinstance(given, Mapping):
        raise ValueError('give a JSON object {"<phase>": seconds}, e.g. {"building": 600}')
    valid = [p.value for p in TIMED_PHASES]
    unknown = sorted(str(key) for key in given if key not in valid)
    if unknown:
        raise ValueError(f"unknown phase(s) {unknown}; the phases with a timeout are "
                         f"{', '.join(valid)}")
    return {**DEFAULT_TIMEOUTS, **{Phase(key): value for key, value in given.items()}}


class Settings(BaseModel):
    """Frozen manager settings; each field ``x`` is set by the variable ``FLOPS_X``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: str = Field(str(Path.home() / ".flops"), description="embedded database lives here")
    mongo_url: str | None = Field(None, description="unset: start an embedded nx-27017 server")
    mongo_db: str = "flops"
    store_uri: str | None = Field(None, description="memory:// for a throw-away store")
    orchestrator_uri: str | None = None
    mqtt_url: str | None = Field(None, description="mqtt://host:port; unset: no event listener")
    mqtt_client_id: str = "flops-manager"
    mqtt_username: str | None = None
    mqtt_password: str | None = Field(None, description="secret: the manager's broker login")
    component_mqtt_username: str | None = Field(
        None, description="broker login handed to components (as a secret, never in specs)"
    )
    component_mqtt_password: str | None = None
    broker_accounts: Literal["shared", "mosquitto-dynsec", "amqtt-policy"] = Field(
        "shared", description="mosquitto-dynsec: one broker login per enrolled component, "
        "limited to its project's topics of its role, created through Mosquitto's dynamic "
        "security plugin with the manager's login; amqtt-policy: the same logins in the policy "
        "file of an amqtt broker running FLOps' plugins (broker_policy_file); shared: the "
        "component login above"
    )
    broker_policy_file: Path | None = Field(
        None, description="amqtt-policy: the policy file the broker's plugins read")
    component_api_url: str | None = Field(
        None, description="the manager's URL as components reach it, to enroll (default: "
        "http://<host>:<port>, loopback when listening on every address)"
    )
    enroll_ttl_s: float = Field(
        1800.0, gt=0, description="lifetime of a service's enrollment token (creation to start)"
    )
    auth_mode: Literal["static", "oakestra"] = "static"
    api_tokens: str | None = Field(None, description='JSON {"token": "user"} or a file path')
    oakestra_url: str | None = None
    auth_cache_ttl_s: float = Field(30.0, ge=0)
    mlflow_public_url: str | None = None
    tracking_uri: str | None = Field(
        None, description="MLflow server components log to; unset: the manager starts one"
    )
    tracking_access: Literal["open", "mlflow-basic-auth"] = Field(
        "open", description="mlflow-basic-auth: the tracking server runs MLflow's basic-auth "
        "app; the manager gives each owner and each project's components their own login, "
        "scoped to the project's experiment and model; open: no logins (loopback only)"
    )
    tracking_admin_uri: str | None = Field(
        None, description="the tracking server as the manager reaches it (default: tracking_uri)"
    )
    tracking_admin_username: str = "admin"
    tracking_admin_password: str | None = Field(
        None, description="secret: MLflow's admin login, held by the manager only"
    )
    dependency_names_timeout_s: float = Field(
        30.0, ge=0, description="how long the manager waits at start for the host names of "
        "MongoDB and the broker to resolve before it stops with the cause"
    )
    events_uri: str | None = Field(
        None, description="where components publish events (default: FLOPS_MQTT_URL)"
    )
    build_target: Literal["environment", "image"] | None = Field(
        None, description="override the backend's build target (single-host test installations)"
    )
    registry: str | None = Field(
        None, description="OCI registry images are pushed to and pulled from (host[:port][/path])"
    )
    registry_tls_verify: bool = True
    registry_username: str | None = None
    registry_password: str | None = Field(
        None, description="secret: the manager's own (admin) registry login; never handed out"
    )
    registry_edge_username: str | None = Field(
        None, description="pull-only login of Oakestra workers' container runtimes (node-level)"
    )
    registry_edge_password: str | None = Field(
        None, description="secret: configured on each worker, never in an SLA"
    )
    registry_key_dir: str | None = Field(
        None, description="the registry token signing key and certificate "
        "(default: <data_dir>/registry-token; made on first use)"
    )
    registry_service: str = Field("flops-registry", description="registry auth.token.service")
    registry_issuer: str = Field("flops-manager", description="registry auth.token.issuer")
    registry_token_ttl_s: float = Field(300.0, gt=0, description="lifetime of registry tokens")
    registry_login_ttl_s: float = Field(
        21600.0, gt=0, description="lifetime of a project's registry login (builder, pulls)"
    )
    base_image: str | None = Field(None, description="base image of built images")
    extra_ca_bundle: str | None = Field(
        None, description="CA bundle mounted into image builds (TLS-intercepting proxies)"
    )
    builder_cache_dir: str | None = Field(
        None, description="environment/image build cache (default: <data_dir>/build-cache)"
    )
    allow_local_repos: bool | None = Field(None, description="default: allowed when embedded")
    api_threads: int = Field(
        32, ge=4, le=512, description="API worker threads (each open event stream holds one)"
    )
    api_reserved_threads: int | None = Field(
        None, ge=1,
        description="API threads event streams may never take, kept for /ready and every other "
        "request (default: a quarter of api_threads)",
    )
    sse_streams_per_owner: int = Field(
        4, ge=1, description="event streams one user may hold open at once (more: 429)"
    )
    local_niceness: int = Field(
        10, ge=0, le=19,
        description="local backend: CPU priority offset of the components it starts (nice), "
        "so that the API and the database stay responsive while projects train",
    )
    local_warm_start: bool = Field(
        True, description="local backend: fork 'python -m' components from a warm "
        "interpreter per environment (flwr, mlflow, pyarrow, sklearn imported once) instead "
        "of starting each cold (false: every component imports everything itself)",
    )
    reconcile_interval_s: float = Field(1.0, gt=0, le=60)
    reconcile_on_events: bool = Field(
        True, description="run a reconcile pass as soon as an event is stored, not only every "
        "reconcile_interval_s (false: the interval only, as before)",
    )
    builder_memory_mb: int = Field(
        4096, ge=256, description="memory limit of image builder services (pip and nested "
        "Buildah; with a component's 512 MB a container builder was OOM-killed)",
    )
    reconcile_workers: int = Field(
        4, ge=1, le=64,
        description="projects reconciled concurrently (one slow backend call stalls only its own)",
    )
    drift_grace_s: float = Field(
        10.0, ge=0, le=3600,
        description="how long a service may be missing (removed outside FLOps) before the "
        "worker recreates it or fails its project",
    )
    drift_max_repairs: int = Field(
        3, ge=0, le=100, description="how often the worker recreates a role's missing services",
    )
    service_status_polling: bool = Field(
        True, description="the reconcile loop reads the status of the services a project "
        "needs from the backend to notice failed ones; off: failures are noticed only through "
        "the components' events and last wills (within 1.5 x their MQTT keepalive plus "
        "will_grace_s)",
    )
    will_grace_s: float = Field(
        5.0, ge=0, le=60,
        description="how long a component whose last will arrived may show a sign of life "
        "(reconnect and say 'online', or report) before it counts as lost; counted while the "
        "manager hears the broker, so a broker restart fails no project",
    )
    action_max_attempts: int = Field(8, ge=1)
    action_backoff_s: float = Field(1.0, ge=0)
    phase_timeouts: dict[Phase, float | None] = Field(
        default_factory=lambda: dict(DEFAULT_TIMEOUTS),
        description="JSON {phase: seconds or null}, merged over the defaults",
    )
    sse_keepalive_s: float = Field(15.0, gt=0)
    sse_max_s: float = Field(300.0, gt=0)
    sse_poll_s: float = Field(0.5, gt=0)
    swagger_ui_url: str = Field(
        SWAGGER_UI_ASSETS,
        description="base URL of Swagger UI's files (default: served by the manager)",
    )
    images_prefix: str = "flops"
    dataplane_image: str = Field(
        "localhost/flops/runtime:latest",
        description="image of the mock data provider and the project data server: FLOps' "
                    "runtime (`containers/build.sh runtime`; any FLOps service image works)")
    builder_image: str = "flops/image-builder:latest"
    tracking_image: str = "flops/tracking-server:latest"

    @field_validator("phase_timeouts", mode="before")
    @classmethod
    def _merge_timeouts(cls, value: Any) -> dict[Phase, float | None]:
        return merge_phase_timeouts(value)

    @field_validator("phase_timeouts")
    @classmethod
    def _positive_timeouts(cls, value: dict[Phase, float | None]) -> dict[Phase, float | None]:
        bad = sorted(p.value for p, limit in value.items() if limit is not None and limit <= 0)
        if bad:
            raise ValueError(f"timeouts of {bad} must be positive seconds (null: no limit)")
        return value

    @model_validator(mode="after")
    def _threads_left_for_requests(self) -> Self:
        if self.reserved_threads >= self.api_threads:
            raise ValueError(
                f"api_reserved_threads ({self.reserved_threads}) must be below api_threads "
                f"({self.api_threads}), or no event stream could ever be served"
            )
        return self

    @property
    def reserved_threads(self) -> int:
        """API threads no event stream may take."""
        return self.api_reserved_threads or max(1, self.api_threads // 4)

    @property
    def max_streams(self) -> int:
        """Event streams all users together may hold (the threads not reserved)."""
        return self.api_threads - self.reserved_threads

    @property
    def component_events_uri(self) -> str:
        """The event destination handed to components (empty: they only log)."""
        return self.events_uri or self.mqtt_url or ""

    @property
    def embedded_database(self) -> bool:
        """Whether the manager runs its own nx-27017 server."""
        return self.mongo_url is None and self.store_uri is None

    @property
    def local_repos_allowed(self) -> bool:
        """Whether ``file://`` URLs and local paths may be used as repositories."""
        if self.allow_local_repos is not None:
            return self.allow_local_repos
        return self.embedded_database or self.store_uri == "memory://"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read :class:`Settings` from the environment.

    Raises
    ------
    ConfigError
        Naming every invalid variable.
    """
    return load_settings(Settings, environ=environ)
