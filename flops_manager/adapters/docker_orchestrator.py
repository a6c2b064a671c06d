"""Orchestrator backend that runs services as containers through the Docker Engine API.

Works with Docker and with Podman's Docker-compatible service
(``podman system service --time=0 unix:///PATH/podman.sock``). URIs: ``docker://`` (``DOCKER_HOST``
or the default socket), ``docker+unix:///path/to.sock``.

Layout
    * One user network per project, ``flops-<project_id>`` (``flops-default`` without a
      project); containers of a project resolve each other by name on it.
    * Service ``S`` with ``N`` instances = containers ``S-0`` .. ``S-(N-1)``, each with the
      network alias ``S``; :meth:`DockerOrchestrator.service_address` is ``S:<ports[0]>``.
    * Every container and network carries ``io.flops.*`` labels (managed, service, role,
      project, owner, instance), so the backend finds its own objects again after a restart
      and never touches anybody else's.
    * ``env`` and ``secret_env`` become the container's environment (the Engine API has no
      other way for plain containers; secrets are therefore visible to whoever may inspect
      containers on this engine, never in labels or logs), plus ``FLOPS_INSTANCE`` and
      ``FLOPS_INSTANCE_INDEX``; ``listen_env`` is ``0.0.0.0:<ports[0]>``.
    * A service pinned to a FLOps node (``ServiceSpec.node``, a learner placed by data) runs
      on that node's container (:mod:`flops_manager.adapters.docker_nodes`): it joins the
      node's network too and reads the node's data server at its address there. A node that
      is not a node container of this engine cannot host it (``PermanentError``).
    * ``public`` services publish ``ports[0]`` on ``publish_host`` at a free host port;
      :meth:`DockerOrchestrator.public_url` is ``http://<public_host>:<host port>``.
    * Containers are never restarted by the engine: a failed instance shows as ``FAILED`` with
      its exit code and last output, and the reconciler decides. A container removed behind
      the backend's back is reported in ``ServiceStatus.missing``; ``create_service`` starts
      it again.
    * Concurrency: changes to a service (create, scale, remove) hold that service's lock, and
      a project's network changes hold the project's; reads (status, logs, URLs) hold none.
      Image pulls happen before any lock is taken, so a slow registry delays only the
      service being created.

Image builders (``privileged`` services): the options below, given as query parameters of the
orchestrator URI, are applied to them only:

    * ``builder_network=host``: run builders in the engine host's network namespace, so they
      reach a registry on the host's loopback (``127.0.0.1:5000``) at the same address the
      engine pulls the images from.
    * ``builder_mount=SRC:DST[:ro]`` (repeatable): bind a host path (``SRC`` absolute) or a
      named volume (``SRC`` a name) into builders: a local repository, the build cache
      (``FLOPS_BUILDER_CACHE_DIR``), a CA bundle (``FLOPS_EXTRA_CA_BUNDLE``), a volume at
      ``/var/lib/containers`` that keeps the layer cache between builds.

    * ``builder_binfmt=PATH`` (default ``/proc/sys/fs/binfmt_misc``; empty: none): the engine
      host's binfmt_misc directory, mounted read-only into builders at
      :data:`BUILDER_BINFMT_DIR` and named by ``FLOPS_BINFMT_DIR``. Emulation of foreign
      platforms (qemu-user-static) is a property of the engine host's kernel, and a
      container's own ``/proc/sys/fs/binfmt_misc`` does not show it: this way the builder's
      emulation check (``image_builder.platforms``) sees the handlers the nested build uses.
    * ``builder_pip_config=PATH``: a ``pip.conf`` on the engine host (index, extra indexes,
      find-links, trusted hosts), mounted read-only into builders at
      :data:`BUILDER_PIP_CONFIG` with ``PIP_CONFIG_FILE`` pointing there and
      ``FLOPS_PIP_FROM_HOST=true``: builders install from where that configuration says, as
      a build on the host with ``FLOPS_PIP_FROM_HOST`` does. The file never reaches a
      command line or the container's environment; local directories it names
      (``file://`` indexes, find-links) need a ``builder_mount`` at the same path.

    Example: ``docker+unix:///run/podman/podman.sock?builder_network=host&builder_mount=
    flops-builder-storage:/var/lib/containers&builder_mount=/etc/ssl/certs/ca-certificates.crt:
    /run/flops/ca.pem:ro&builder_pip_config=/etc/pip.conf``.

Reaching the host (MQTT broker, MLflow): containers reach the host as
:attr:`DockerOrchestrator.host_alias` (``host.containers.internal``). Podman adds that name
itself; on Docker the backend maps it to ``host-gateway``. Services on the host must listen on
an address the container network reaches (``0.0.0.0`` or the bridge's gateway), and the
manager must hand components URIs with that name (``mqtt://host.containers.internal:1883``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import docker  # type: ignore[import-untyped]  # docker 7.2 ships no type information
import docker.errors  # type: ignore[import-untyped]
import requests

from flops_manager.adapters.bridge_neighbours import NEIGHBOUR_SYSCTLS, is_podman
from flops_manager.adapters.container_preflight import check_name_resolution
from flops_manager.adapters.docker_nodes import NodeEndpoint, find_node_endpoint
from flops_manager.ports.errors import NotFoundError, PermanentError, TemporaryError
from flops_manager.ports.orchestrator import (
    BuildTarget,
    Cluster,
    Orchestrator,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)
from flops_manager.settings import Settings
from image_builder.settings import DEFAULT_BASE_IMAGE

PullLogin = Callable[[str, "str | None"], "dict[str, str] | None"]
"""``(image, project id) -> {"username", "password"}`` to pull with, or ``None`` (anonymous)."""

logger = logging.getLogger(__name__)

LABEL_MANAGED = "io.flops.managed"
LABEL_SERVICE = "io.flops.service"
LABEL_ROLE = "io.flops.role"
LABEL_PROJECT = "io.flops.project"
LABEL_OWNER = "io.flops.owner"
LABEL_INSTANCE = "io.flops.instance"
LABEL_PORT = "io.flops.port"
LABEL_INSTANCES = "io.flops.instances"
HOST_ALIAS = "host.containers.internal"
HOST_BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
"""The engine host's binfmt_misc directory (default of ``builder_binfmt``)."""
BUILDER_BINFMT_DIR = "/run/flops/host-binfmt_misc"
"""Where builders see the engine host's binfmt_misc handlers (``FLOPS_BINFMT_DIR``)."""
BUILDER_PIP_CONFIG = "/run/flops/pip.conf"
"""Where builders see ``builder_pip_config`` (``PIP_CONFIG_FILE``)."""
LOG_TAIL_LINES = 2000
T = TypeVar("T")


def network_name(project_id: str | None) -> str:
    """Return the network of a project (``flops-<project_id>``)."""
    return f"flops-{project_id or 'default'}"


def instance_name(service: str, index: int) -> str:
    """Return the container name of instance ``index`` of ``service``."""
    return f"{service}-{index}"


def container_state(state: Mapping[str, Any]) -> tuple[ServiceState, str | None]:
    """Map a container's ``State`` (from ``inspect``) to a service state and a message.

    ``running``/``paused`` -> RUNNING; ``created``/``restarting``/``stopping``/``removing`` ->
    PENDING; ``exited`` with 0
    -> STOPPED (done); any other exit, ``dead`` or an OOM kill -> FAILED.
    """
    status = str(state.get("Status", "")).lower()
    code = int(state.get("ExitCode", 0) or 0)
    if state.get("OOMKilled"):
        return ServiceState.FAILED, f"killed: out of memory (exit code {code})"
    if status in ("running", "paused"):
        return ServiceState.RUNNING, None
    if status in ("created", "restarting", "configured", "initialized", "stopping", "removing"):
        return ServiceState.PENDING, None  # on its way; what it ends as is seen next time
    if status in ("exited", "stopped") and code == 0:
        return ServiceState.STOPPED, None
    error = str(state.get("Error") or "").strip()
    detail = f"exited with code {code}" + (f": {error}" if error else "")
    return ServiceState.FAILED, detail


def killed_from_outside(state: Mapping[str, Any]) -> bool:
    """Whether a container's main process was ended by a signal (exit code 128+n), not OOM.

    The backend stops containers only to remove them, so such a container was killed behind
    its back (``podman kill``, ``podman stop``).
    """
    status = str(state.get("Status", "")).lower()
    code = int(state.get("ExitCode", 0) or 0)
    return status in ("exited", "stopped") and code > 128 and not state.get("OOMKilled")


def missing_instances(service: str, instances: int, alive: list[Any]) -> tuple[str, ...]:
    """Names of the instances ``0..instances-1`` of ``service`` without a live container.

    ``alive``: the containers that exist and were not killed from outside.
    """
    indices = {int(c.labels.get(LABEL_INSTANCE, "0")) for c in alive}
    return tuple(instance_name(service, i) for i in range(instances) if i not in indices)


def service_state(states: list[ServiceState]) -> ServiceState:
    """Combine instance states.

    Any failed -> FAILED; all stopped -> STOPPED; any running -> RUNNING; else PENDING.
    """
    if any(s is ServiceState.FAILED for s in states):
        return ServiceState.FAILED
    if states and all(s is ServiceState.STOPPED for s in states):
        return ServiceState.STOPPED
    if any(s is ServiceState.RUNNING for s in states):
        return ServiceState.RUNNING
    return ServiceState.PENDING


def container_env(spec: ServiceSpec, index: int) -> dict[str, str]:
    """Return the environment of instance ``index`` (plain, secret, instance, listen).

    Raises
    ------
    PermanentError
        If ``listen_env`` is set but the spec has no port.
    """
    env = {"FLOPS_INSTANCE": instance_name(spec.name, index),
           "FLOPS_INSTANCE_INDEX": str(index), **spec.env, **spec.secret_env}
    if spec.listen_env:
        if not spec.ports:
            raise PermanentError(f"service {spec.name}: listen_env needs ports[0]")
        env[spec.listen_env] = f"0.0.0.0:{spec.ports[0]}"
    return env


def labels_for(spec: ServiceSpec, index: int, owner: str) -> dict[str, str]:
    """Return the labels of instance ``index`` (no secrets)."""
    labels = {
        LABEL_MANAGED: "true", LABEL_SERVICE: spec.name, LABEL_ROLE: spec.role,
        LABEL_PROJECT: spec.project_id or "default", LABEL_OWNER: spec.owner or owner,
        LABEL_INSTANCE: str(index), LABEL_INSTANCES: str(spec.instances),
    }
    if spec.ports:
        labels[LABEL_PORT] = str(spec.ports[0])
    return labels


@dataclasses.dataclass(frozen=True)
class Mount:
    """A bind mount (``source`` an absolute host path) or a named volume (``source`` a name)."""

    source: str
    target: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Mount:
        """Parse ``SRC:DST[:ro|rw]``.

        Raises
        ------
        PermanentError
            If the text is not of that form or ``DST`` is not absolute.
        """
        parts = text.split(":")
        mode = "rw"
        if len(parts) == 3:
            mode = parts.pop()
        if len(parts) != 2 or not all(parts) or mode not in ("ro", "rw"):
            raise PermanentError(f"builder_mount {text!r}: expected SRC:DST[:ro|rw]")
        source, target = parts
        if not target.startswith("/"):
            raise PermanentError(f"builder_mount {text!r}: the target must be an absolute path")
        return cls(source, target, mode == "ro")

    def as_volume(self) -> dict[str, str]:
        """The value of this mount in the Docker SDK's ``volumes`` mapping."""
        return {"bind": self.target, "mode": "ro" if self.read_only else "rw"}


@dataclasses.dataclass(frozen=True)
class DockerOptions:
    """Options of the Docker backend.

    Attributes
    ----------
    owner
        Default owner label (``io.flops.owner``) of created objects.
    publish_host
        Host address public ports are published on.
    public_host
        Host name put into public URLs.
    stop_timeout_s
        Grace period between SIGTERM and SIGKILL when removing.
    pull
        Pull images that are not present locally.
    preflight_image
        Image (with ``python3``) of the containers :meth:`DockerOrchestrator.preflight` starts.
    builder_network
        ``"host"``: privileged services (image builders) use the host's network namespace;
        ``None``: the project network like every other service.
    builder_mounts
        Mounts of privileged services.
    builder_binfmt
        The engine host's binfmt_misc directory, shown to privileged services (``None``:
        not shown).
    builder_pip_config
        A pip configuration file on the engine host privileged services install with.
    """

    owner: str = "flops"
    publish_host: str = "0.0.0.0"  # noqa: S104 - published ports: every interface, by design
    public_host: str = "127.0.0.1"
    stop_timeout_s: int = 10
    pull: bool = True
    builder_network: str | None = None
    builder_mounts: tuple[Mount, ...] = ()
    builder_binfmt: str | None = HOST_BINFMT_DIR
    builder_pip_config: str | None = None
    preflight_image: str = DEFAULT_BASE_IMAGE


@dataclasses.dataclass(frozen=True)
class BuilderExtras:
    """What privileged services (image builders) get beyond their spec: mounts and variables."""

    mounts: tuple[Mount, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


def builder_extras(options: DockerOptions) -> BuilderExtras:
    """Return the mounts and variables of image builders under ``options``.

    The ``builder_mount`` mounts, the engine host's binfmt_misc directory (read-only, named by
    ``FLOPS_BINFMT_DIR``) and the pip configuration file (read-only, named by
    ``PIP_CONFIG_FILE``, used with ``FLOPS_PIP_FROM_HOST``).
    """
    mounts = list(options.builder_mounts)
    env: dict[str, str] = {}
    if options.builder_binfmt:
        mounts.append(Mount(options.builder_binfmt, BUILDER_BINFMT_DIR, read_only=True))
        env["FLOPS_BINFMT_DIR"] = BUILDER_BINFMT_DIR
    if options.builder_pip_config:
        mounts.append(Mount(options.builder_pip_config, BUILDER_PIP_CONFIG, read_only=True))
        env.update(PIP_CONFIG_FILE=BUILDER_PIP_CONFIG, FLOPS_PIP_FROM_HOST="true")
    return BuilderExtras(tuple(mounts), env)


_OPTION_NAMES = ("builder_network", "builder_mount", "builder_binfmt", "builder_pip_config")


def parse_options(query: str) -> DockerOptions:
    """Return the options given as the orchestrator URI's query string.

    Raises
    ------
    PermanentError
        On an unknown parameter or an invalid value.
    """
    values = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(values) - set(_OPTION_NAMES))
    if unknown:
        raise PermanentError(f"unknown Docker orchestrator URI parameter(s): {', '.join(unknown)}"
                             f" (known: {', '.join(_OPTION_NAMES)})")
    network = values.get("builder_network", [""])[-1] or None
    if network not in (None, "host"):
        raise PermanentError(f"builder_network={network!r}: only 'host' is supported")
    mounts = tuple(Mount.parse(text) for text in values.get("builder_mount", []))
    binfmt = values.get("builder_binfmt", [HOST_BINFMT_DIR])[-1] or None
    pip_config = values.get("builder_pip_config", [""])[-1] or None
    for name, path in (("builder_binfmt", binfmt), ("builder_pip_config", pip_config)):
        if path is not None and not path.startswith("/"):
            raise PermanentError(f"{name}={path!r}: give an absolute path on the engine host")
    return DockerOptions(builder_network=network, builder_mounts=mounts,
                         builder_binfmt=binfmt, builder_pip_config=pip_config)


def container_config(spec: ServiceSpec, index: int, options: DockerOptions) -> dict[str, Any]:
    """Return the Docker SDK ``containers.create`` arguments of instance ``index`` (no network).

    Privileged services (image builders) also get :func:`builder_extras`: their mounts, and
    their variables under the spec's own.
    """
    env = container_env(spec, index)
    kwargs: dict[str, Any] = {
        "name": instance_name(spec.name, index), "detach": True, "environment": env,
        "labels": labels_for(spec, index, options.owner),
        "mem_limit": f"{spec.resources.memory_mb}m",
        "nano_cpus": int(spec.resources.vcpus * 1_000_000_000),
        "privileged": spec.privileged,
    }
    if spec.command:
        kwargs["command"] = list(spec.command)
    if spec.privileged:
        extras = builder_extras(options)
        kwargs["environment"] = {**extras.env, **env}
        if extras.mounts:
            kwargs["volumes"] = {m.source: m.as_volume() for m in extras.mounts}
    return kwargs


class DockerOrchestrator(Orchestrator):
    """Runs each service instance as a container on one Docker (or Podman) engine.

    Parameters
    ----------
    client
        A ``docker.DockerClient``; closed by :meth:`close`.
    options
        Backend options.
    """

    build_target = BuildTarget.IMAGE
    clusters_are_labels = True
    """One engine: a hierarchical project's clusters (named, or its learners' FLOps node
    clusters) group its learners under cluster aggregators; every service runs on the engine."""
    host_alias = HOST_ALIAS

    def __init__(self, client: Any, options: DockerOptions | None = None, *,
                 pull_login: PullLogin | None = None) -> None:
        self.client = client
        self.options = options or DockerOptions()
        self.pull_login = pull_login
        self._specs: dict[str, ServiceSpec] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._is_podman: bool | None = None

    def _lock(self, key: str) -> threading.Lock:
        """The lock of one service (``service:NAME``) or project network (``network:ID``)."""
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Translate engine errors: unreachable/slow/5xx -> TemporaryError, 4xx -> Permanent."""
        try:
            yield
        except (NotFoundError, PermanentError, TemporaryError):
            raise
        except docker.errors.ImageNotFound as exc:
            raise PermanentError(f"{what}: image not found: {_explain(exc)}") from None
        except docker.errors.APIError as exc:
            status = getattr(exc, "status_code", None) or 500
            error = TemporaryError if status >= 500 or status == 429 else PermanentError
            raise error(f"{what}: {_explain(exc)}") from None
        except requests.exceptions.Timeout as exc:  # a busy engine: look again later
            raise TemporaryError(f"{what}: container engine did not answer in time: {exc}") \
                from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise TemporaryError(f"{what}: container engine unreachable: {exc}") from None

    def _containers(self, name: str) -> list[Any]:
        found = self.client.containers.list(
            all=True, filters={"label": [f"{LABEL_SERVICE}={name}", f"{LABEL_MANAGED}=true"]})
        return sorted(found, key=lambda c: int(c.labels.get(LABEL_INSTANCE, "0")))

    def _podman(self) -> bool:
        if self._is_podman is None:
            self._is_podman = is_podman(self.client)
        return self._is_podman

    def _ensure_network(self, project_id: str | None) -> str:
        name = network_name(project_id)
        if not self.client.networks.list(names=[name]):
            try:
                self.client.networks.create(
                    name, driver="bridge",
                    labels={LABEL_MANAGED: "true", LABEL_PROJECT: project_id or "default"})
            except docker.errors.APIError as exc:  # created concurrently
                if getattr(exc, "status_code", None) != 409:
                    raise
        return name

    def _ensure_image(self, image: str, project_id: str | None = None) -> None:
        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            if not self.options.pull:
                raise
        logger.info("pulling %s", image)
        login = self.pull_login(image, project_id) if self.pull_login else None
        # X-Registry-Auth: the engine trades the project's pull login for a registry token
        self.client.images.pull(image, auth_config=login)

    def _host_network(self, spec: ServiceSpec) -> bool:
        return spec.privileged and self.options.builder_network == "host"

    def _node_endpoint(self, spec: ServiceSpec) -> NodeEndpoint | None:
        """The node container a pinned service runs on (``None``: not pinned).

        Raises
        ------
        PermanentError
            If no node container of this engine is that node.
        """
        if spec.node is None:
            return None
        reported = spec.env.get(spec.node_location_env) if spec.node_location_env else None
        endpoint = find_node_endpoint(self.client, spec.node, reported)
        if endpoint is None:
            raise PermanentError(
                f"service {spec.name} is placed on FLOps node {spec.node!r} (data server "
                f"{reported}), which is not a node container on this engine: the Docker "
                f"backend runs learners on nodes started with `flops node container-start`")
        return endpoint

    def _run_instance(self, spec: ServiceSpec, index: int, network: str | None) -> None:
        name = instance_name(spec.name, index)
        kwargs = container_config(spec, index, self.options)
        endpoint = self._node_endpoint(spec)
        if endpoint is not None and spec.node_location_env:
            kwargs["environment"][spec.node_location_env] = endpoint.location
        if not self._podman():
            kwargs["extra_hosts"] = {HOST_ALIAS: "host-gateway"}
        if network is None:
            # The host's network namespace: no hostname, aliases or published ports. Podman adds
            # its host alias there too; on Docker the host-gateway mapping above does.
            kwargs["network_mode"] = "host"
            container = self.client.containers.create(spec.image_of(index), **kwargs)
            container.start()
            return
        kwargs.update(network=network, hostname=name)
        if self._podman():
            kwargs["sysctls"] = dict(NEIGHBOUR_SYSCTLS)
        if spec.public and spec.ports:
            # An explicit 0.0.0.0 host IP breaks Podman's port forwarding: leave it out.
            host_ip = self.options.publish_host
            every = ("", "0.0.0.0")  # noqa: S104 - compared with, not bound
            binding = None if host_ip in every else (host_ip, None)
            kwargs["ports"] = {f"{spec.ports[0]}/tcp": binding}
        kwargs["networking_config"] = {
            network: self.client.api.create_endpoint_config(aliases=[spec.name, name])}
        container = self.client.containers.create(spec.image_of(index), **kwargs)
        if endpoint is not None:  # on the node: its local network as well
            self.client.networks.get(endpoint.network).connect(container)
        container.start()

    def _status(self, name: str, containers: list[Any]) -> ServiceStatus | None:
        """The service's status from its containers; ``None`` if none exists any more."""
        states: list[ServiceState] = []
        present: list[Any] = []
        message = None
        for container in containers:
            try:  # reads take no lock: the container may be removed meanwhile
                container.reload()
                state, detail = container_state(container.attrs.get("State", {}))
                if state is ServiceState.FAILED and message is None:
                    tail = _log_tail(container, 20).strip()[-500:]
                    message = f"instance {container.name} {detail}; last output: {tail}"
            except docker.errors.NotFound:
                continue
            states.append(state)
            present.append(container)
        if not present:
            return None
        first = present[0]
        spec = self._specs.get(name)
        instances = spec.instances if spec else int(first.labels.get(LABEL_INSTANCES, "1"))
        port = first.labels.get(LABEL_PORT)
        return ServiceStatus(
            name=name, role=first.labels.get(LABEL_ROLE, ""), state=service_state(states),
            instances=instances, running=sum(s is ServiceState.RUNNING for s in states),
            address=f"{name}:{port}" if port else None, message=message,
            missing=missing_instances(name, instances, [
                c for c in present if not killed_from_outside(c.attrs.get("State", {}))]),
        )

    def _call(self, what: str, body: Callable[[], T], *, lock: str | None = None) -> T:
        """Run ``body`` translating engine errors, holding the lock named ``lock`` if given."""
        if lock is None:
            with self._translated(what):
                return body()
        with self._lock(lock), self._translated(what):
            return body()

    # -- the port ------------------------------------------------------------------------

    def create_service(self, spec: ServiceSpec) -> ServiceStatus:
        """Create the service, or start the instances of an existing one that are missing.

        The image is pulled (if absent) before the service's lock is taken.
        """
        what = f"create service {spec.name}"
        if spec.resources.vgpus:
            raise PermanentError(f"service {spec.name}: the Docker backend does not assign GPUs")
        current = self._call(what, lambda: self._status(spec.name, self._containers(spec.name)))
        if current is not None and not current.missing:
            self._specs.setdefault(spec.name, spec)
            return current
        for image in dict.fromkeys(map(spec.image_of, range(spec.instances))):
            self._call(what, functools.partial(self._ensure_image, image, spec.project_id))

        def create() -> ServiceStatus:
            existing = self._containers(spec.name)
            for container in existing:  # killed from outside: replaced below
                with contextlib.suppress(docker.errors.NotFound):
                    container.reload()  # a listed container's State is only a word
                    if killed_from_outside(container.attrs.get("State", {})):
                        container.remove(force=True, v=True)
            existing = self._containers(spec.name)
            present = {int(c.labels.get(LABEL_INSTANCE, "0")) for c in existing}
            self._specs[spec.name] = spec
            try:
                with self._lock(f"network:{spec.project_id}"):
                    network = None if self._host_network(spec) else self._ensure_network(
                        spec.project_id)
                    for index in range(spec.instances):
                        if index not in present:
                            self._run_instance(spec, index, network)
            except Exception:
                if not existing:  # nothing half-made is left behind
                    self._remove_containers(spec.name)
                raise
            status = self._status(spec.name, self._containers(spec.name))
            if status is None:
                raise TemporaryError(f"service {spec.name} was removed while being created")
            return status

        return self._call(what, create, lock=f"service:{spec.name}")

    def service_status(self, name: str) -> ServiceStatus | None:  # noqa: D102
        return self._call(f"status of service {name}",
                          lambda: self._status(name, self._containers(name)))

    def service_address(self, name: str) -> str | None:  # noqa: D102
        status = self.service_status(name)
        return None if status is None else status.address

    def public_url(self, name: str) -> str | None:
        """Return ``http://<public_host>:<published port>`` of instance 0, if published."""
        def url() -> str | None:
            containers = self._containers(name)
            if not containers:
                return None
            first = containers[0]
            first.reload()
            ports = first.attrs.get("NetworkSettings", {}).get("Ports") or {}
            port = first.labels.get(LABEL_PORT)
            bindings = ports.get(f"{port}/tcp") if port else None
            if not bindings:
                return None
            return f"http://{self.options.public_host}:{bindings[0]['HostPort']}"

        return self._call(f"public URL of service {name}", url)

    def service_logs(self, name: str) -> dict[str, str]:  # noqa: D102
        def logs() -> dict[str, str]:
            containers = self._containers(name)
            if not containers:
                raise NotFoundError(f"service {name} not found")
            return {c.name: _log_tail(c, LOG_TAIL_LINES) for c in containers}

        return self._call(f"logs of service {name}", logs)

    def remove_service(self, name: str) -> bool:  # noqa: D102
        return self._call(f"remove service {name}", lambda: self._remove_containers(name),
                          lock=f"service:{name}")

    def _remove_containers(self, name: str) -> bool:
        containers = self._containers(name)
        self._specs.pop(name, None)
        projects = {c.labels.get(LABEL_PROJECT, "default") for c in containers}
        for container in containers:
            with contextlib.suppress(docker.errors.APIError):
                container.stop(timeout=self.options.stop_timeout_s)
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        for project in projects:
            with self._lock(f"network:{None if project == 'default' else project}"):
                self._remove_network_if_unused(project)
        return bool(containers)

    def _remove_network_if_unused(self, project: str) -> None:
        left = self.client.containers.list(
            all=True, filters={"label": [f"{LABEL_PROJECT}={project}", f"{LABEL_MANAGED}=true"]})
        if left:
            return
        for network in self.client.networks.list(names=[network_name(project)]):
            if network.attrs.get("Labels", {}).get(LABEL_MANAGED) == "true":
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()

    def list_clusters(self) -> list[Cluster]:  # noqa: D102
        def clusters() -> list[Cluster]:
            info = self.client.info()
            return [Cluster(id="docker", name=str(info.get("Name") or "docker"))]

        return self._call("list clusters", clusters)

    def preflight(self) -> None:
        """Check that containers on this engine resolve and reach each other by name.

        Raises
        ------
        PreflightError
            Naming the missing piece (e.g. Podman without netavark/aardvark-dns) and its fix.
        """
        image = self.options.preflight_image
        auth = self.pull_login(image, None) if self.pull_login else None
        check_name_resolution(self.client, image, pull=self.options.pull, auth=auth)

    def close(self) -> None:
        """Close the API client (containers keep running; they belong to their projects)."""
        self.client.close()


def _decode(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _log_tail(container: Any, lines: int) -> str:
    """The last ``lines`` lines a container printed (stdout and stderr).

    Podman's Docker API (4.3) sometimes answers ``logs?tail=N`` with a bare newline when the
    output ends in lines written in pieces (a partial-line record, as an unbuffered Python
    ``print`` makes); the whole log then still holds them, so a blank tail is read again in
    full and cut here.
    """
    tail = _decode(container.logs(tail=lines))
    if tail.strip():
        return tail
    whole = _decode(container.logs())
    return "".join(whole.splitlines(keepends=True)[-lines:])


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def docker_client_for(uri: str) -> Any:
    """Return a ``docker.DockerClient`` for ``docker://`` or ``docker+unix:///path``.

    A query string (backend options, see :func:`parse_options`) is ignored here.

    Raises
    ------
    PermanentError
        If the URI's scheme is neither.
    """
    uri = uri.split("?", 1)[0]
    if uri.startswith("docker+unix://"):
        path = uri.removeprefix("docker+unix://")
        return docker.DockerClient(base_url=f"unix://{path}")
    if uri.startswith("docker://"):
        return docker.from_env()
    raise PermanentError(f"unsupported Docker orchestrator URI {uri!r}: use docker:// or "
                         "docker+unix:///path/to.sock")


def build_docker_orchestrator(uri: str, settings: object) -> Orchestrator:
    """Build the Docker backend for ``docker://`` or ``docker+unix:///path/to.sock``.

    Options come from the URI's query string (:func:`parse_options`). With the manager's
    ``settings`` naming a registry, images of that registry are pulled with a pull login of
    the service's project (:class:`~flops_manager.identity.registry_server.PullLogins`).

    Raises
    ------
    PermanentError
        If the scheme or an option is invalid.
    """
    options = parse_options(uri.split("?", 1)[1] if "?" in uri else "")
    base_image = getattr(settings, "base_image", None)
    if base_image:
        options = dataclasses.replace(options, preflight_image=base_image)
    pull_login = None
    if isinstance(settings, Settings) and settings.registry:
        from flops_manager.identity.registry_server import PullLogins, keyring

        pull_login = PullLogins(keyring(settings), settings)
    return DockerOrchestrator(docker_client_for(uri), options, pull_login=pull_login)
