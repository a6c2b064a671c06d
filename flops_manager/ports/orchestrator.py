"""The Orchestrator port: create, scale, inspect and remove services on some platform."""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Resources:
    """Resources requested per instance."""

    memory_mb: int = 512
    vcpus: float = 1.0
    vgpus: int = 0
    storage_mb: int = 0


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """A service to run: ``instances`` copies of ``image`` running ``command`` with ``env``.

    ``name`` is deterministic (``{project_id}-{role}``) so creation is idempotent.
    """

    name: str
    role: str
    image: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    instances: int = 1
    resources: Resources = dataclasses.field(default_factory=Resources)
    owner: str = ""
    project_id: str | None = None
    cluster: str | None = None
    ports: tuple[int, ...] = ()


class ServiceState(enum.StrEnum):
    """Observed state of a service."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    """What the orchestrator reports about a service."""

    name: str
    role: str
    state: ServiceState
    instances: int
    running: int = 0
    address: str | None = None
    message: str | None = None


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A cluster services can be placed on."""

    id: str
    name: str
    active: bool = True


class Orchestrator(abc.ABC):
    """Runs services. Every method may raise ``TemporaryError`` (retry) or ``PermanentError``.

    Constraints
    -----------
    * ``create_service`` MUST be idempotent: if a service of that name exists, return its status.
    * ``remove_service`` MUST be idempotent: removing a missing service returns ``False``.
    """

    @abc.abstractmethod
    def create_service(self, spec: ServiceSpec) -> ServiceStatus:
        """Create (or find) the service named ``spec.name`` and start its instances."""

    @abc.abstractmethod
    def scale_service(self, name: str, *, instances: int) -> ServiceStatus:
        """Set the number of instances of ``name``.

        Raises
        ------
        NotFoundError
            If no such service exists.
        """

    @abc.abstractmethod
    def service_status(self, name: str) -> ServiceStatus | None:
        """Return the status of ``name`` or ``None`` if it does not exist."""

    @abc.abstractmethod
    def service_address(self, name: str) -> str | None:
        """Return a reachable ``host:port`` of ``name`` (``None`` if unknown or not running)."""

    @abc.abstractmethod
    def remove_service(self, name: str) -> bool:
        """Remove ``name`` and its instances; return whether it existed."""

    @abc.abstractmethod
    def list_clusters(self) -> list[Cluster]:
        """Return the clusters services can be placed on."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (default: nothing)."""
