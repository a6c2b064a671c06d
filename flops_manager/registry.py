"""Backends chosen by URI scheme (MLflow-style registry); builders import lazily."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar
from urllib.parse import urlparse

from flops_contracts.errors import ConfigError
from flops_manager.ports.broker_accounts import BrokerAccounts, SharedBrokerLogin
from flops_manager.ports.node_store import NodeStore
from flops_manager.ports.orchestrator import Orchestrator
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.tracking_access import OpenTracking, TrackingAccess
from flops_manager.settings import Settings

T = TypeVar("T")
Builder = Callable[[str, Settings], T]
"""Builds a backend from its URI and the manager's settings (imports its adapter lazily)."""


def _memory_store(uri: str, settings: Settings) -> ProjectStore:
    from flops_manager.adapters.memory_store import MemoryProjectStore

    return MemoryProjectStore()


def _mongo_store(uri: str, settings: Settings) -> ProjectStore:
    from flops_manager.adapters.mongo_store import MongoProjectStore

    return MongoProjectStore(uri, db_name=settings.mongo_db)


def _memory_orchestrator(uri: str, settings: Settings) -> Orchestrator:
    from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator

    return MemoryOrchestrator()


def _local_orchestrator(uri: str, settings: Settings) -> Orchestrator:
    from pathlib import Path

    from flops_manager.adapters.local_orchestrator import LOCAL_WORKDIR, LocalOrchestrator

    orchestrator = LocalOrchestrator(Path(settings.data_dir) / LOCAL_WORKDIR,
                                     niceness=settings.local_niceness,
                                     warm_start=settings.local_warm_start)
    orchestrator.reap_orphans()  # processes a killed manager left behind
    return orchestrator


class Registry(Generic[T]):
    """Maps URI schemes to builders of one port type ``T`` (a store, an orchestrator)."""

    def __init__(self, what: str, variable: str,
                 builders: Mapping[str, Builder[T]] | None = None) -> None:
        self.what = what
        self.variable = variable
        self._builders: dict[str, Builder[T]] = dict(builders or {})

    def register(self, scheme: str, builder: Builder[T]) -> None:
        """Register ``builder`` for URIs of ``scheme``."""
        self._builders[scheme] = builder

    def schemes(self) -> list[str]:
        """Return the registered schemes."""
        return sorted(self._builders)

    def build(self, uri: str | None, settings: Settings) -> T:
        """Build the backend for ``uri``.

        Raises
        ------
        ConfigError
            If ``uri`` is unset or its scheme unknown, listing the supported schemes.
        """
        supported = ", ".join(f"{s}://" for s in self.schemes())
        if not uri:
            raise ConfigError(f"set {self.variable} to choose the {self.what} ({supported})")
        scheme = urlparse(uri).scheme
        builder = self._builders.get(scheme)
        if builder is None:
            raise ConfigError(
                f"{self.variable}={uri!r}: unsupported {self.what} scheme {scheme!r}; "
                f"use one of {supported}"
            )
        return builder(uri, settings)


def _oakestra_orchestrator(uri: str, settings: Settings) -> Orchestrator:
    from flops_manager.adapters.oakestra import build_oakestra_orchestrator

    return build_oakestra_orchestrator(uri, settings)


def _docker_orchestrator(uri: str, settings: Settings) -> Orchestrator:
    from flops_manager.adapters.docker_orchestrator import build_docker_orchestrator

    return build_docker_orchestrator(uri, settings)


def store_registry() -> Registry[ProjectStore]:
    """The project stores FLOps ships, by URI scheme."""
    return Registry("project store", "FLOPS_MONGO_URL or FLOPS_STORE_URI",
                    {"memory": _memory_store, "mongodb": _mongo_store})


def orchestrator_registry() -> Registry[Orchestrator]:
    """The orchestrator backends FLOps ships, by URI scheme."""
    return Registry("orchestrator", "FLOPS_ORCHESTRATOR_URI", {
        "memory": _memory_orchestrator,
        "local": _local_orchestrator,
        "docker": _docker_orchestrator,
        "docker+unix": _docker_orchestrator,
        "oakestra": _oakestra_orchestrator,
        "oakestra+https": _oakestra_orchestrator,
    })


def build_store(settings: Settings) -> ProjectStore:
    """Build the store named by ``FLOPS_STORE_URI`` or ``FLOPS_MONGO_URL``."""
    return store_registry().build(settings.store_uri or settings.mongo_url, settings)


def build_node_store(settings: Settings) -> NodeStore:
    """Build the node store next to the project store (same database)."""
    uri = settings.store_uri or settings.mongo_url
    if uri and urlparse(uri).scheme == "mongodb":
        from flops_manager.adapters.mongo_node_store import MongoNodeStore

        return MongoNodeStore(uri, db_name=settings.mongo_db)
    from flops_manager.adapters.memory_node_store import MemoryNodeStore

    return MemoryNodeStore()


def build_orchestrator(settings: Settings) -> Orchestrator:
    """Build the orchestrator named by ``FLOPS_ORCHESTRATOR_URI``."""
    return orchestrator_registry().build(settings.orchestrator_uri, settings)


def build_broker_accounts(settings: Settings) -> BrokerAccounts:
    """Build the broker accounts chosen by ``FLOPS_BROKER_ACCOUNTS``.

    Raises
    ------
    ConfigError
        If ``mosquitto-dynsec`` lacks the manager's broker URL or login, or
        ``amqtt-policy`` its policy file.
    """
    if settings.broker_accounts == "shared":
        return SharedBrokerLogin()
    if settings.broker_accounts == "amqtt-policy":
        if settings.broker_policy_file is None:
            raise ConfigError("FLOPS_BROKER_ACCOUNTS=amqtt-policy needs FLOPS_BROKER_POLICY_FILE "
                              "(the policy file of the embedded amqtt broker)")
        from flops_manager.adapters.file_broker_accounts import PolicyFileBrokerAccounts

        return PolicyFileBrokerAccounts(settings.broker_policy_file)
    if not settings.mqtt_url or not settings.mqtt_username:
        raise ConfigError("FLOPS_BROKER_ACCOUNTS=mosquitto-dynsec needs FLOPS_MQTT_URL and "
                          "FLOPS_MQTT_USERNAME (a dynamic-security administrator)")
    from flops_manager.adapters.mosquitto_dynsec import DynsecBrokerAccounts

    return DynsecBrokerAccounts(settings.mqtt_url, username=settings.mqtt_username,
                                password=settings.mqtt_password)


def build_tracking_access(settings: Settings) -> TrackingAccess:
    """Build the tracking server administration chosen by ``FLOPS_TRACKING_ACCESS``.

    Raises
    ------
    ConfigError
        If ``mlflow-basic-auth`` lacks the server's URI or the admin password.
    """
    if settings.tracking_access == "open":
        return OpenTracking()
    uri = settings.tracking_admin_uri or settings.tracking_uri
    if not uri or not settings.tracking_admin_password:
        raise ConfigError("FLOPS_TRACKING_ACCESS=mlflow-basic-auth needs FLOPS_TRACKING_URI (or "
                          "FLOPS_TRACKING_ADMIN_URI) and FLOPS_TRACKING_ADMIN_PASSWORD")
    from flops_manager.adapters.mlflow_auth import MlflowAuthAccess

    return MlflowAuthAccess(uri, username=settings.tracking_admin_username,
                            password=settings.tracking_admin_password)
