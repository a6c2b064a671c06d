"""``OakestraOrchestrator``: the Orchestrator port on an Oakestra root orchestrator.

* One Oakestra application per project (``application_name`` derived from the project id,
  namespace ``FLOPS_OAKESTRA_NAMESPACE``), created lazily with the first service, deleted when
  its last service is removed; services without project share one application per owner.
* ``create_service`` looks the service up by name first (idempotent), allocates a
  round-robin IP (from ``FLOPS_OAKESTRA_RR_SUBNET``) that no service of the application
  holds, appends the microservice and asks for ``spec.instances`` instances. When Oakestra
  drops the service again (e.g. the network plugin refused the address) it retries with the
  next address.
* Services are found by the ``FLOPS_SERVICE_NAME`` entry of their stored environment.
* ``service_address`` = ``<round-robin IP>:<ports[0]>`` once an instance runs: reachable from
  other Oakestra services over the overlay network (not from outside).
* ``public_url`` = ``http://<public IP of the worker running an instance>:<ports[0]>`` for
  ``public`` services (their SLA maps that host port to the container port); ``None`` for
  other services.
* States: see :mod:`.status`. The wanted instance count is remembered per service; after a
  restart it is taken as the number of instances Oakestra lists (at least 1 once deployed).
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from flops_manager.adapters.oakestra import names, sla
from flops_manager.adapters.oakestra.client import RootOrchestratorClient
from flops_manager.adapters.oakestra.errors import OakestraConflictError
from flops_manager.adapters.oakestra.models import Application, Service
from flops_manager.adapters.oakestra.settings import OakestraSettings
from flops_manager.adapters.oakestra.status import instance_state, service_state
from flops_manager.adapters.oakestra.versions import CAPABILITIES
from flops_manager.ports.errors import NotFoundError, PermanentError, TemporaryError
from flops_manager.ports.orchestrator import (
    BuildTarget,
    Cluster,
    Orchestrator,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Located:
    app: Application
    service: Service


def _flops_name(service: Service) -> str | None:
    return service.environment.get(sla.SERVICE_NAME_VAR)


def _main_port(service: Service) -> int | None:
    ports = service.environment.get(sla.SERVICE_PORTS_VAR, "")
    first = ports.split(",")[0].strip()
    return int(first) if first.isdigit() else None


def _find(services: list[Service], name: str, *, app_id: str) -> Service | None:
    """The service of application ``app_id`` that FLOps named ``name``.

    Never another application's, even if a listing returned it.
    """
    for service in services:
        if service.belongs_to(app_id) and _flops_name(service) == name:
            return service
    return None


def _candidate_keys(name: str) -> list[str]:
    """Project ids ``name`` may start with (``{project_id}-{role}``), longest first."""
    parts = name.split("-")
    return ["-".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


class OakestraOrchestrator(Orchestrator):
    """Runs FLOps services as Oakestra services (no I/O until a method is called).

    Parameters
    ----------
    client
        The root-orchestrator client.
    settings
        Backend settings (version, namespace, addresses...).
    """

    build_target = BuildTarget.IMAGE

    def __init__(self, client: RootOrchestratorClient, settings: OakestraSettings) -> None:
        self._client = client
        self._settings = settings
        self._options = settings.sla_options()
        self._pool = settings.address_pool()
        self._app_ids: dict[str, str] = {}
        self._where: dict[str, str] = {}
        self._wanted: dict[str, int] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ applications

    def _ensure_app(self, key: str, owner: str) -> sla.ApplicationRef:
        ref = sla.application_ref(key, self._options)
        cached = self._app_ids.get(key)
        if cached is not None:
            return dataclasses.replace(ref, app_id=cached)
        found = self._find_app(ref)
        if found is None:
            try:
                created = self._client.create_application(sla.application_sla(ref, owner=owner))
            except OakestraConflictError:
                created = self._client.list_applications()
            found = next((a for a in created
                          if a.name == ref.name and a.namespace == ref.namespace), None)
            if found is None:
                raise PermanentError(f"Oakestra did not create application {ref.name}")
            logger.info("created Oakestra application %s (%s) for %s", ref.name, found.app_id,
                        key)
        self._app_ids[key] = found.app_id
        return dataclasses.replace(ref, app_id=found.app_id)

    def _find_app(self, ref: sla.ApplicationRef) -> Application | None:
        for app in self._client.list_applications():
            if app.name == ref.name and app.namespace == ref.namespace:
                return app
        return None

    def _forget_app(self, app_id: str) -> None:
        for key, cached in list(self._app_ids.items()):
            if cached == app_id:
                del self._app_ids[key]
        for name, cached in list(self._where.items()):
            if cached == app_id:
                del self._where[name]

    def _locate(self, name: str) -> _Located | None:
        """Find service ``name``: in the remembered application, else by scanning ours."""
        app_id = self._where.get(name)
        apps = None
        if app_id is not None:
            services = self._client.list_services(app_id)
            if services is not None:
                found = _find(services, name, app_id=app_id)
                if found is not None:
                    app = Application(app_id, "", self._options.namespace, ())
                    return _Located(app, found)
            self._where.pop(name, None)
        apps = [a for a in self._client.list_applications()
                if a.namespace == self._options.namespace]
        likely = {names.application_name(k) for k in _candidate_keys(name)
                  if names.FLOPS_NAME.fullmatch(k)}
        apps.sort(key=lambda a: a.name not in likely)
        for app in apps:
            services = self._client.list_services(app.app_id) or []
            found = _find(services, name, app_id=app.app_id)
            if found is not None:
                self._where[name] = app.app_id
                return _Located(app, found)
        return None

    # ------------------------------------------------------------------ status

    def _wanted_of(self, name: str, service: Service) -> int:
        wanted = self._wanted.get(name)
        if wanted is not None:
            return wanted
        return max(len(service.instances), 0 if service.status is None else 1)

    def _status(self, name: str, service: Service) -> ServiceStatus:
        wanted = self._wanted_of(name, service)
        state, running, message = service_state(service, wanted=wanted)
        return ServiceStatus(
            name=name,
            role=service.environment.get(sla.SERVICE_ROLE_VAR, service.namespace),
            state=state,
            instances=wanted,
            running=running,
            address=self._address(service, running),
            message=message,
        )

    @staticmethod
    def _address(service: Service, running: int) -> str | None:
        port = _main_port(service)
        if not running or port is None or not service.rr_ip:
            return None
        return f"{service.rr_ip}:{port}"

    # ------------------------------------------------------------------ port methods

    def create_service(self, spec: ServiceSpec) -> ServiceStatus:
        """Create (or find) ``spec.name`` and ask for ``spec.instances`` instances.

        Raises
        ------
        InvalidSpecError
            If the spec cannot be expressed as an SLA (``env://`` image, bad name, ...).
        """
        sla.validate_spec(spec, allow_environment_images=self._options.allow_environment_images)
        key = names.app_key_for(project_id=spec.project_id, owner=spec.owner)
        if spec.cluster is not None and not CAPABILITIES[self._options.version].direct_constraint:
            logger.warning("Oakestra %s ignores cluster pinning; %s may land anywhere",
                           self._options.version, spec.name)
        with self._lock:
            app = self._ensure_app(key, spec.owner)
            services = self._client.list_services(app.app_id)
            if services is None:  # deleted behind our back
                self._forget_app(app.app_id)
                app = self._ensure_app(key, spec.owner)
                services = self._client.list_services(app.app_id) or []
            existing = _find(services, spec.name, app_id=app.app_id)
            if existing is not None:
                self._where[spec.name] = app.app_id
                if existing.status is None and not existing.instances and spec.instances:
                    # created, but the deploy requests were lost (e.g. a crash in between)
                    self._client.deploy_instances(existing.service_id, spec.instances)
                    self._wanted[spec.name] = spec.instances
                    existing = self._client.get_service(existing.service_id) or existing
                return self._status(spec.name, existing)
            service_id = self._append(spec, app, taken=[s.rr_ip for s in services])
            self._where[spec.name] = app.app_id
            self._wanted[spec.name] = spec.instances
            self._client.deploy_instances(service_id, spec.instances)
            created = self._client.get_service(service_id)
            if created is None:
                raise TemporaryError(f"Oakestra service {spec.name} vanished after creation")
            logger.info("created Oakestra service %s (%s) with %d instance(s)", spec.name,
                        service_id, spec.instances)
            return self._status(spec.name, created)

    def _append(self, spec: ServiceSpec, app: sla.ApplicationRef, *,
                taken: list[str | None]) -> str:
        failures: list[str] = []
        for _ in range(self._settings.create_attempts):
            rr_ip = self._pool.allocate(app=app.key, service=spec.name, taken=taken)
            payload = sla.service_sla(spec, app=app, rr_ip=rr_ip, options=self._options)
            result = self._client.append_services(payload)
            if result.job_id and not result.failed:
                return result.job_id
            failures.extend(f"{name}: {message}" for name, message in result.failed)
            logger.warning("Oakestra dropped service %s with address %s: %s", spec.name,
                           rr_ip, failures[-1:] or "no job id")
            taken.append(rr_ip)
        raise TemporaryError(
            f"Oakestra did not create service {spec.name} after "
            f"{self._settings.create_attempts} attempts: {'; '.join(failures) or 'no job id'}"
        )

    def service_status(self, name: str) -> ServiceStatus | None:  # noqa: D102
        with self._lock:
            located = self._locate(name)
            return None if located is None else self._status(name, located.service)

    def service_address(self, name: str) -> str | None:  # noqa: D102
        status = self.service_status(name)
        return None if status is None else status.address

    def public_url(self, name: str) -> str | None:
        """Return ``http://<worker public IP>:<port>`` of a running public service."""
        with self._lock:
            located = self._locate(name)
        if located is None or not located.service.port:
            return None
        host_port = located.service.port.split(";")[0].split(":")[0].split("/")[0]
        for instance in located.service.instances:
            if instance_state(instance.status) is ServiceState.RUNNING and instance.public_ip:
                return f"http://{instance.public_ip}:{host_port}"
        return None

    def service_logs(self, name: str) -> dict[str, str]:
        """Return the logs each instance last reported to Oakestra."""
        with self._lock:
            located = self._locate(name)
        if located is None:
            raise NotFoundError(f"service {name} not found")
        return {f"{name}-{i.number}": i.logs or "" for i in located.service.instances}

    def remove_service(self, name: str) -> bool:
        """Undeploy and delete ``name``; delete the application once it is empty."""
        with self._lock:
            located = self._locate(name)
            self._wanted.pop(name, None)
            if located is None:
                return False
            existed = self._client.delete_service(located.service.service_id)
            self._where.pop(name, None)
            app_id = located.app.app_id
            remaining = self._client.list_services(app_id)
            if remaining == []:
                self._client.delete_application(app_id)
                self._forget_app(app_id)
                logger.info("deleted empty Oakestra application %s", app_id)
            return existed

    def list_clusters(self) -> list[Cluster]:
        """Return the clusters that reported to Oakestra recently."""
        return [Cluster(id=c.cluster_id, name=c.name, active=True)
                for c in self._client.list_clusters(active_only=True) if c.active]

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()
