"""The Orchestrator port: create, scale, inspect and remove services on some platform."""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Mapping

from flops_manager.ports.errors import NotFoundError


@dataclasses.dataclass(frozen=True)
class Resources:
    """Resources requested per instance."""

    memory_mb: int = 512
    vcpus: float = 1.0
    vgpus: int = 0
    storage_mb: int = 0


IMAGE_ENV_SCHEME = "env://"
"""Image references of this scheme name a Python environment directory (local backend)."""

PYTHON = "python"
"""``command[0]`` meaning "the Python interpreter of the image" (or of the environment)."""


class BuildTarget(enum.StrEnum):
    """What the image builder must produce for a backend."""

    ENVIRONMENT = "environment"
    """A virtual environment on this machine (``env://<dir>`` image references)."""
    IMAGE = "image"
    """OCI images pushed to a registry."""


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """A service to run: ``instances`` copies of ``image`` running ``command`` with ``env``.

    ``name`` is deterministic (``{project_id}-{role}``) so creation is idempotent.

    Attributes
    ----------
    image
        An OCI image reference, or ``env://<dir>`` for a Python environment (local backend);
        backends that cannot run a reference raise ``PermanentError``.
    command
        Argument vector; ``"python"`` as first element means the image's interpreter.
        Configuration travels in ``env``, never in ``command``.
    env
        Plain configuration, safe to write into backend descriptors (SLAs, container specs).
    secret_env
        Credentials (tokens, passwords). Backends pass them to the process but MUST NOT write
        them into descriptors that others can read (an Oakestra SLA, logs).
    ports
        Ports the service listens on (``ports[0]`` is its main port, the one
        :meth:`Orchestrator.service_address` reports).
    listen_env
        If set, the backend puts the ``host:port`` the process must listen on (for
        ``ports[0]``) in this variable: a free port on the local backend, ``0.0.0.0:<port>``
        in containers.
    public
        Users need to reach ``ports[0]`` from outside (MLflow UI, inference endpoint).
    one_shot
        The service runs to completion (builder, data provider) and is not restarted.
    privileged
        Needs extended privileges (the container image builder).
    platforms
        Platforms (``linux/amd64``...) the service may be placed on; empty = any.
    node
        The worker node (of ``cluster``) the service must run on: a learner placed on a FLOps
        node (:mod:`flops_manager.nodes.placement`). Backends that run everything on one
        machine ignore it; Oakestra pins the service to that worker.
    instance_images
        Image of instance ``i`` where it differs from ``image`` (``""`` or missing: ``image``),
        e.g. the arm64 variant of a multi-platform image pinned by digest.
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
    node: str | None = None
    ports: tuple[int, ...] = ()
    secret_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    listen_env: str | None = None
    public: bool = False
    one_shot: bool = False
    privileged: bool = False
    platforms: tuple[str, ...] = ()
    instance_images: tuple[str, ...] = ()

    def image_of(self, index: int) -> str:
        """Return the image instance ``index`` runs."""
        if index < len(self.instance_images) and self.instance_images[index]:
            return self.instance_images[index]
        return self.image


class ServiceState(enum.StrEnum):
    """Observed state of a service."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    """What the orchestrator reports about a service.

    ``missing`` names the instances that are gone although FLOps did not remove them: a
    container removed behind its back, a local process killed by a signal FLOps did not send.
    ``create_service`` of the same spec starts them again.
    """

    name: str
    role: str
    state: ServiceState
    instances: int
    running: int = 0
    address: str | None = None
    message: str | None = None
    missing: tuple[str, ...] = ()


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
    * ``create_service`` MUST be idempotent: if a service of that name exists, start the
      instances it reports as ``missing`` (if any) and return its status.
    * ``remove_service`` MUST be idempotent: removing a missing service returns ``False``.
    """

    build_target: BuildTarget = BuildTarget.IMAGE
    """What the image builder must produce for services of this backend."""
    clusters_are_labels: bool = False
    """Whether any cluster name is accepted (one machine) instead of only active clusters."""
    services_survive_restart: bool = True
    """Whether services created before a restart of the manager are still managed by it
    (``False``: the local backend stops a dead manager's processes when it starts)."""

    @abc.abstractmethod
    def create_service(self, spec: ServiceSpec) -> ServiceStatus:
        """Create (or find) the service named ``spec.name`` and start its missing instances."""

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

    def service_logs(self, name: str) -> dict[str, str]:
        """Return the recent output of each instance of ``name`` (instance name -> text).

        Raises
        ------
        NotFoundError
            If no such service exists (backends without log access return ``{}``).
        """
        if self.service_status(name) is None:
            raise NotFoundError(f"service {name} not found")
        return {}

    def public_url(self, name: str) -> str | None:
        """Return the URL users reach a ``public`` service at (default: none known)."""
        address = self.service_address(name)
        return None if address is None else f"http://{address}"

    def preflight(self) -> None:  # noqa: B027 - optional hook
        """Check, before the manager serves, that this backend can run services at all.

        Raises ``PermanentError`` whose message names what is missing and how to install it
        (default: nothing to check).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (default: nothing)."""
