"""Pure generation of Oakestra SLAs (``sla_version`` v2.0) from FLOps ServiceSpecs.

One Oakestra application per project (or per owner for project-less services), one
microservice per ServiceSpec. Each microservice carries:

* ``code`` = ``spec.image`` (an OCI reference; ``env://`` images are refused unless
  ``SlaOptions.allow_environment_images``: single-host test installations), ``cmd`` =
  ``spec.command`` (``"python"`` stays ``"python"``: the image's interpreter; an empty command
  leaves the image's entrypoint), ``virtualization: "container"``;
* ``environment`` = ``spec.env`` plus ``FLOPS_SERVICE_NAME``, ``FLOPS_SERVICE_ROLE``,
  ``FLOPS_SERVICE_PORTS`` (comma-separated ``spec.ports``) and ``<listen_env>=0.0.0.0:<ports[0]>``.
  Configuration never travels as positional command arguments;
* ``memory`` (MB), ``vcpus`` (rounded up: Oakestra counts whole vCPUs), ``vgpus``, ``storage``;
* ``one_shot`` and ``privileged`` (both in the v0.4.400 and the develop schema);
* ``addresses.rr_ip``: the round-robin IP chosen by :mod:`.addresses`;
* ``port``: ``"<p>:<p>"`` for ``public`` services only (the worker exposes ``ports[0]`` on
  its public IP); internal services are reached through their round-robin IP instead;
* ``constraints``: ``{"type": "direct", "cluster": spec.cluster}`` pins a service to a
  cluster (the only placement both the v0.4.400 and the develop root schedulers honour; the
  ``clusters`` constraint is broken with two or more clusters on v0.4.400 and ignored on
  develop), and with ``spec.node`` (a learner placed on a FLOps node) to that worker:
  ``{"type": "direct", "cluster": C, "node": N}`` (the develop scheduler takes the
  constraint's ``node`` as the only candidate of its cluster; Appendix C, item 4);
  ``{"type": "addons", "needs": [...]}`` for roles configured with node addons, on v0.4.400
  only (later versions ignore it).

Secrets: an SLA carries none. Anyone who can read the application, the scheduler, the network
plugin and the cluster managers receive the SLA, and a real worker mounts no host directory
into a container, so the environment is the only channel to a component. The manager therefore
hands every project service a single-use, short-lived enrollment token in its plain
environment (``flops_manager.identity``), which the component trades at start for its working
credentials; a spec that still has ``secret_env`` is refused.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from flops_manager.adapters.oakestra import names
from flops_manager.adapters.oakestra.errors import InvalidSpecError
from flops_manager.adapters.oakestra.versions import CAPABILITIES, OakestraVersion
from flops_manager.ports.orchestrator import IMAGE_ENV_SCHEME, ServiceSpec

SLA_VERSION = "v2.0"
VIRTUALIZATION = "container"

MAX_MEMORY_MB = 4 * 1024 * 1024
MAX_VCPUS = 1024
MAX_VGPUS = 64
MAX_STORAGE_MB = 1 << 30
MAX_INSTANCES = 1000
MAX_IMAGE_LENGTH = 512

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMAGE_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

SERVICE_NAME_VAR = "FLOPS_SERVICE_NAME"
SERVICE_ROLE_VAR = "FLOPS_SERVICE_ROLE"
SERVICE_PORTS_VAR = "FLOPS_SERVICE_PORTS"
RESERVED_VARS = frozenset({SERVICE_NAME_VAR, SERVICE_ROLE_VAR, SERVICE_PORTS_VAR})


@dataclasses.dataclass(frozen=True)
class SlaOptions:
    """Settings that shape every SLA.

    Attributes
    ----------
    version
        Target Oakestra version (decides which constraints are emitted).
    namespace
        Namespace of the applications (``^[a-zA-Z0-9]{1,30}$``).
    addons
        Node addons per role (``{"builder": ("image-builder",)}``), emitted on v0.4.400.
    allow_environment_images
        Accept ``env://<dir>`` images (only for workers that share this file system).
    """

    version: OakestraVersion
    namespace: str = names.DEFAULT_NAMESPACE
    addons: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    allow_environment_images: bool = False


@dataclasses.dataclass(frozen=True)
class ApplicationRef:
    """The Oakestra application of a project."""

    key: str
    name: str
    namespace: str
    app_id: str = ""


def application_ref(key: str, options: SlaOptions, app_id: str = "") -> ApplicationRef:
    """Return the application of FLOps application key ``key`` (project id or owner key)."""
    if not names.OAKESTRA_NAME.fullmatch(options.namespace):
        raise InvalidSpecError(
            f"invalid Oakestra namespace {options.namespace!r}: use 1-30 letters or digits"
        )
    return ApplicationRef(key, names.application_name(key), options.namespace, app_id)


def _fail(spec: ServiceSpec, problem: str) -> InvalidSpecError:
    return InvalidSpecError(f"service {spec.name!r} cannot run on Oakestra: {problem}")


def _check_int(spec: ServiceSpec, what: str, value: object, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise _fail(spec, f"{what} must be an integer from 0 to {upper}, got {value!r}")
    return value


def _vcpus(spec: ServiceSpec) -> int:
    value = spec.resources.vcpus
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(spec, f"vcpus must be a finite number, got {value!r}")
    if not 0 <= value <= MAX_VCPUS:
        raise _fail(spec, f"vcpus must be from 0 to {MAX_VCPUS}, got {value!r}")
    return math.ceil(value)


def check_image(spec: ServiceSpec, *, allow_environment: bool = False) -> None:
    """Raise unless ``spec.image`` is an OCI image reference.

    With ``allow_environment``, ``env://<absolute dir>`` references are accepted too (single-host
    test installations whose workers run the environment's interpreter).

    Raises
    ------
    InvalidSpecError
        For ``env://`` references (built for the local backend) unless allowed, and malformed
        references.
    """
    image = spec.image
    if image.startswith(IMAGE_ENV_SCHEME):
        directory = image.removeprefix(IMAGE_ENV_SCHEME)
        if allow_environment:
            if not directory.startswith("/") or len(image) > MAX_IMAGE_LENGTH or any(
                    ch.isspace() or ch == "\x00" for ch in directory):
                raise _fail(spec, f"image {image!r} does not name an absolute directory")
            return
        raise _fail(
            spec,
            f"image {image!r} is a local Python environment; the Oakestra backend needs OCI "
            "images built by the container builder (build target 'image')",
        )
    if not image or len(image) > MAX_IMAGE_LENGTH or "://" in image or not (
        IMAGE_REFERENCE.fullmatch(image)
    ):
        raise _fail(spec, f"image {image!r} is not an OCI image reference")


def _check_env(spec: ServiceSpec, env: Mapping[str, str], what: str) -> None:
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            raise _fail(spec, f"{what} variable name {key!r} is invalid")
        if not isinstance(value, str) or "\x00" in value:
            raise _fail(spec, f"{what} variable {key} must be a string without NUL")


def _check_ports(spec: ServiceSpec) -> None:
    for port in spec.ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _fail(spec, f"port {port!r} is not in 1..65535")
    if len(set(spec.ports)) != len(spec.ports):
        raise _fail(spec, f"ports {spec.ports} repeat")
    if spec.listen_env is not None and not spec.ports:
        raise _fail(spec, "listen_env needs at least one port")
    if spec.public and not spec.ports:
        raise _fail(spec, "a public service needs at least one port")


def _check_secrets(spec: ServiceSpec) -> None:
    if spec.secret_env:
        raise _fail(spec, f"secrets {sorted(spec.secret_env)} cannot travel in an SLA; hand "
                    "them to the component through enrollment (Enrollment.seal)")


def validate_spec(spec: ServiceSpec, *, allow_environment_images: bool = False) -> None:
    """Raise :class:`InvalidSpecError` if ``spec`` cannot become a valid SLA.

    Checks names, image (``env://`` only with ``allow_environment_images``), command,
    environment (names, reserved variables, no secrets), resources (integers within
    Oakestra's range), instances, ports and the cluster.
    """
    names.check_flops_name(spec.name, what="service name")
    if not isinstance(spec.role, str) or not spec.role.strip():
        raise _fail(spec, "role must be a non-empty string")
    check_image(spec, allow_environment=allow_environment_images)
    for arg in spec.command:
        if not isinstance(arg, str) or "\x00" in arg:
            raise _fail(spec, f"command element {arg!r} must be a string without NUL")
    _check_env(spec, spec.env, "environment")
    reserved = RESERVED_VARS & set(spec.env)
    if reserved:
        raise _fail(spec, f"environment variables {sorted(reserved)} are set by the backend")
    if spec.listen_env is not None:
        if not ENV_NAME.fullmatch(spec.listen_env) or spec.listen_env in RESERVED_VARS:
            raise _fail(spec, f"listen_env {spec.listen_env!r} is not a usable variable name")
        if spec.listen_env in spec.env:
            raise _fail(spec, f"listen_env {spec.listen_env} is also set in env")
    _check_secrets(spec)
    res = spec.resources
    _check_int(spec, "memory_mb", res.memory_mb, MAX_MEMORY_MB)
    _vcpus(spec)
    _check_int(spec, "vgpus", res.vgpus, MAX_VGPUS)
    _check_int(spec, "storage_mb", res.storage_mb, MAX_STORAGE_MB)
    _check_int(spec, "instances", spec.instances, MAX_INSTANCES)
    _check_ports(spec)
    if spec.cluster is not None and not CLUSTER_NAME.fullmatch(spec.cluster):
        raise _fail(spec, f"cluster name {spec.cluster!r} is invalid")
    if spec.node is not None:
        if spec.cluster is None:
            raise _fail(spec, f"node {spec.node!r} needs its cluster")
        if not CLUSTER_NAME.fullmatch(spec.node):
            raise _fail(spec, f"node name {spec.node!r} is invalid")


def environment(spec: ServiceSpec, *, app: ApplicationRef, options: SlaOptions) -> list[str]:
    """Return the SLA ``environment`` (``KEY=value`` entries, sorted by key)."""
    env: dict[str, str] = dict(spec.env)
    env[SERVICE_NAME_VAR] = spec.name
    env[SERVICE_ROLE_VAR] = spec.role
    if spec.ports:
        env[SERVICE_PORTS_VAR] = ",".join(str(p) for p in spec.ports)
    if spec.listen_env is not None:
        env[spec.listen_env] = f"0.0.0.0:{spec.ports[0]}"
    return [f"{key}={env[key]}" for key in sorted(env)]


def constraints(spec: ServiceSpec, options: SlaOptions) -> list[dict[str, Any]]:
    """Return the placement constraints of ``spec`` for the configured version."""
    result: list[dict[str, Any]] = []
    if spec.cluster is not None:
        pin = {"type": "direct", "cluster": spec.cluster}
        if spec.node is not None:
            pin["node"] = spec.node
        result.append(pin)
    addons = options.addons.get(spec.role, ())
    if addons and CAPABILITIES[options.version].addons_constraint:
        result.append({"type": "addons", "needs": list(addons)})
    return result


def microservice(
    spec: ServiceSpec, *, app: ApplicationRef, rr_ip: str | None, options: SlaOptions
) -> dict[str, Any]:
    """Return the SLA microservice object of ``spec`` (validated first).

    Raises
    ------
    InvalidSpecError
        If ``spec`` is invalid (see :func:`validate_spec`).
    """
    validate_spec(spec, allow_environment_images=options.allow_environment_images)
    res = spec.resources
    service: dict[str, Any] = {
        "microserviceID": "",
        "microservice_name": names.microservice_name(spec.name, app_key=app.key),
        "microservice_namespace": names.namespace_for(spec.role),
        "virtualization": VIRTUALIZATION,
        "code": spec.image,
        "memory": res.memory_mb,
        "vcpus": _vcpus(spec),
        "vgpus": res.vgpus,
        "storage": res.storage_mb,
        "one_shot": spec.one_shot,
        "privileged": spec.privileged,
        "environment": environment(spec, app=app, options=options),
    }
    if spec.command:
        service["cmd"] = list(spec.command)
    if rr_ip is not None:
        service["addresses"] = {"rr_ip": rr_ip}
    if spec.public:
        service["port"] = f"{spec.ports[0]}:{spec.ports[0]}"
    placement = constraints(spec, options)
    if placement:
        service["constraints"] = placement
    return service


def _application(
    app: ApplicationRef, services: list[dict[str, Any]], *, description: str
) -> dict[str, Any]:
    return {
        "applicationID": app.app_id,
        "application_name": app.name,
        "application_namespace": app.namespace,
        "application_desc": description,
        "microservices": services,
    }


def _customer(owner: str) -> str:
    return owner or "flops"


def application_sla(app: ApplicationRef, *, owner: str = "") -> dict[str, Any]:
    """Return the SLA creating the (empty) application ``app`` (``POST /api/application/``)."""
    return {
        "sla_version": SLA_VERSION,
        "customerID": _customer(owner),
        "applications": [_application(app, [], description=f"FLOps {app.key}")],
    }


def service_sla(
    spec: ServiceSpec, *, app: ApplicationRef, rr_ip: str | None, options: SlaOptions
) -> dict[str, Any]:
    """Return the SLA appending ``spec`` to the existing application (``POST /api/service/``).

    Raises
    ------
    InvalidSpecError
        If ``spec`` is invalid or ``app`` has no id yet.
    """
    if not app.app_id:
        raise InvalidSpecError(f"application {app.name} has no id: create it first")
    service = microservice(spec, app=app, rr_ip=rr_ip, options=options)
    return {
        "sla_version": SLA_VERSION,
        "customerID": _customer(spec.owner),
        "applications": [_application(app, [service], description=f"FLOps {app.key}")],
    }


