"""Orchestrator backend that runs services as local processes (the embedded default).

Each instance of a service is one process started from ``spec.command`` with ``spec.env`` and
``spec.secret_env`` plus ``FLOPS_INSTANCE`` (``<service>-<i>``) and ``FLOPS_INSTANCE_INDEX``
(``i``), in its own session, with its output in ``<workdir>/services/<service>/<instance>.log``.
Images: ``env://<dir>`` runs ``python`` from that virtual environment; any other reference runs
``python`` as the manager's own interpreter (the FLOps services are installed beside it). With
``warm_start``, a ``python -m`` command is forked from that interpreter's warm server
(:mod:`flops_manager.warm_start`) instead of starting cold. A service with ``listen_env`` gets
a free loopback port per instance in that variable. Stopping sends SIGTERM to the process group
and SIGKILL after a grace period;
:meth:`LocalOrchestrator.close` stops everything, so nothing outlives the manager.

An instance killed by a signal the backend did not send (``kill -9`` from outside, the OOM
killer) is reported as ``missing`` as well as failed: nothing is left to remove, and
``create_service`` of the same spec starts it again (the reconcile worker decides whether it
should, :mod:`flops_manager.lifecycle.drift`).

Every started instance is recorded in ``<workdir>/pids/`` (its pid, start time and the
manager's pid). A manager that was killed cannot re-adopt its processes, so a new
LocalOrchestrator stops the recorded processes of managers that are no longer alive
(:meth:`LocalOrchestrator.reap_orphans`); the reconcile worker then fails or redoes the
affected projects.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from flops_manager.local_processes import (
    ManagedProcess,
    component_base_env,
    free_port,
    start_process,
    stop_processes,
)
from flops_manager.port_book import PortBook, port_is_free
from flops_manager.ports.errors import NotFoundError, PermanentError
from flops_manager.ports.orchestrator import (
    IMAGE_ENV_SCHEME,
    PYTHON,
    BuildTarget,
    Cluster,
    Orchestrator,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)
from flops_manager.supervisor import GroupLeader, start_time, stop_groups
from flops_manager.warm_start import WarmStarts

LOG_TAIL_BYTES = 2000
LOCAL_WORKDIR = "local"
PORT_QUARANTINE_S = 120.0
"""How long a port handed to an instance is not handed to another one."""
PORT_ATTEMPTS = 20
"""The local backend's directory under the manager's data directory."""

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Service:
    spec: ServiceSpec
    processes: list[ManagedProcess]
    ports: list[int] = dataclasses.field(default_factory=list)


def resolve_command(spec: ServiceSpec) -> list[str]:
    """Return the argument vector of ``spec`` on this machine.

    Raises
    ------
    PermanentError
        If the command is empty or the ``env://`` environment has no interpreter.
    """
    if not spec.command:
        raise PermanentError(f"service {spec.name}: the local backend needs a command")
    argv = list(spec.command)
    if argv[0] != PYTHON:
        return argv
    if spec.image.startswith(IMAGE_ENV_SCHEME):
        python = Path(spec.image.removeprefix(IMAGE_ENV_SCHEME)) / "bin" / "python"
        if not python.exists():
            raise PermanentError(f"service {spec.name}: environment {python.parent.parent} "
                                 "has no bin/python (was it removed from the build cache?)")
        argv[0] = str(python)
    else:
        argv[0] = sys.executable
    return argv


def _tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


def service_state(exit_codes: list[int | None]) -> ServiceState:
    """Derive a service's state from its instances' exit codes (``None`` = running).

    Any instance that failed makes the service failed; all exited with 0 is stopped (done).
    """
    if any(code not in (None, 0) for code in exit_codes):
        return ServiceState.FAILED
    if exit_codes and all(code == 0 for code in exit_codes):
        return ServiceState.STOPPED
    return ServiceState.RUNNING


def _killed(service: _Service) -> list[ManagedProcess]:
    """Instances ended by a signal: the backend only signals services it removed."""
    return [p for p in service.processes if (p.returncode or 0) < 0]


def _address(host: str, service: _Service) -> str | None:
    if service.ports:
        return f"{host}:{service.ports[0]}"
    if service.spec.ports:
        return f"{host}:{service.spec.ports[0]}"
    return None


class LocalOrchestrator(Orchestrator):
    """Runs each service instance as a local process on this machine."""

    build_target = BuildTarget.ENVIRONMENT
    clusters_are_labels = True
    services_survive_restart = False

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1", grace_s: float = 5.0,
                 niceness: int = 0, warm_start: bool = False) -> None:
        """Run services under ``workdir``.

        With ``warm_start``, ``python -m`` components are forked from a warm interpreter per
        environment (:mod:`flops_manager.warm_start`), kept until :meth:`close`.
        """
        self.workdir = workdir
        self.warm = WarmStarts(workdir / "fork-servers", niceness=niceness) if warm_start \
            else None
        self.host = host
        self.grace_s = grace_s
        self.niceness = niceness
        self._services: dict[str, _Service] = {}
        self._lock = threading.Lock()
        self._ports = PortBook(workdir / "ports.json")
        self._handed_out: dict[int, float] = {}
        """Ports given to instances lately (monotonic time): not handed out twice meanwhile."""

    @property
    def _pid_dir(self) -> Path:
        return self.workdir / "pids"

    def _record_pid(self, process: ManagedProcess) -> None:
        record = {"pid": process.leader.pid, "start": process.leader.start,
                  "manager": os.getpid(), "manager_start": start_time(os.getpid()),
                  "instance": process.name}
        self._pid_dir.mkdir(parents=True, exist_ok=True)
        (self._pid_dir / f"{process.name}.json").write_text(json.dumps(record),
                                                             encoding="utf-8")

    def _forget_pids(self, processes: list[ManagedProcess]) -> None:
        for process in processes:
            (self._pid_dir / f"{process.name}.json").unlink(missing_ok=True)

    def recorded(self) -> dict[str, tuple[GroupLeader, bool]]:
        """Recorded instances: name -> (its process group, whether its manager still runs)."""
        found: dict[str, tuple[GroupLeader, bool]] = {}
        paths = sorted(self._pid_dir.glob("*.json")) if self._pid_dir.is_dir() else []
        for path in paths:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
                continue
            owner = int(record.get("manager", 0))
            managed = bool(owner) and start_time(owner) == record.get("manager_start")
            leader = GroupLeader(int(record.get("pid", 0)), record.get("start"))
            found[str(record.get("instance"))] = (leader, managed)
        return found

    def reap_orphans(self) -> list[str]:
        """Stop the recorded processes of managers that are no longer running.

        Returns the instance names that were still running and have been killed.
        """
        orphans: dict[str, GroupLeader] = {}
        for name, (leader, managed) in self.recorded().items():
            if managed:
                continue  # its manager still runs (another orchestrator in this process)
            if leader.pid and leader.members():
                orphans[name] = leader
            (self._pid_dir / f"{name}.json").unlink(missing_ok=True)
        stop_groups(orphans.values(), grace_s=self.grace_s)
        killed = sorted(orphans)
        if killed:
            log.warning("stopped %d processes left by a previous manager: %s", len(killed),
                        ", ".join(killed))
        return killed

    def _log_path(self, name: str, index: int) -> Path:
        return self.workdir / "services" / name / f"{name}-{index}.log"

    def _fresh_port(self) -> int:
        """A free port this backend has not handed out in the last ``PORT_QUARANTINE_S``.

        ``free_port`` closes its socket before the instance binds, so two instances started
        in quick succession could otherwise be given the same port.
        """
        now = time.monotonic()
        self._handed_out = {p: t for p, t in self._handed_out.items()
                            if now - t < PORT_QUARANTINE_S}
        port = free_port(self.host)
        for _ in range(PORT_ATTEMPTS):
            if port not in self._handed_out:
                break
            port = free_port(self.host)
        self._handed_out[port] = now
        return port

    def _start_instance(self, service: _Service, index: int) -> ManagedProcess:
        spec = service.spec
        argv = resolve_command(spec)
        env = {"FLOPS_INSTANCE": f"{spec.name}-{index}", "FLOPS_INSTANCE_INDEX": str(index),
               **spec.env, **spec.secret_env}
        if spec.listen_env:
            while len(service.ports) <= index:
                # public services keep their port across restarts: saved links still work
                service.ports.append(self._ports.port(f"{spec.name}-{index}", self.host)
                                     if spec.public else self._fresh_port())
            if not spec.public and not port_is_free(service.ports[index], self.host):
                # restarted after its port was taken meanwhile: listen elsewhere
                service.ports[index] = self._fresh_port()
            env[spec.listen_env] = f"{self.host}:{service.ports[index]}"
        try:
            process = start_process(f"{spec.name}-{index}", argv, env,
                                    log_path=self._log_path(spec.name, index),
                                    base_env=component_base_env(),
                                    niceness=self.niceness, warm=self.warm)
        except OSError as exc:
            raise PermanentError(f"service {spec.name}: cannot start {spec.command[0]!r}: "
                                 f"{exc}") from None
        self._record_pid(process)
        return process

    def _status(self, service: _Service) -> ServiceStatus:
        spec = service.spec
        codes = [p.returncode for p in service.processes]
        state = service_state(codes)
        message = None
        failed = [(p, c) for p, c in zip(service.processes, codes, strict=True)
                  if c not in (None, 0)]
        if failed:
            process, code = failed[0]
            message = (f"instance {process.name} exited with code {code}; last output: "
                       f"{_tail(process.log_path).strip()[-500:]}")
        return ServiceStatus(
            name=spec.name,
            role=spec.role,
            state=state,
            instances=spec.instances,
            running=sum(code is None for code in codes),
            address=_address(self.host, service),
            message=message,
            missing=tuple(p.name for p in _killed(service)),
        )

    def _restart_killed(self, service: _Service) -> None:
        """Start again the instances killed from outside (same index, port and log)."""
        for process in _killed(service):
            index = service.processes.index(process)
            stop_processes([process], grace_s=0)  # reap its group and close its log
            service.processes[index] = self._start_instance(service, index)

    def create_service(self, spec: ServiceSpec) -> ServiceStatus:  # noqa: D102
        with self._lock:
            existing = self._services.get(spec.name)
            if existing is not None:
                self._restart_killed(existing)
                return self._status(existing)
            service = _Service(spec, [])
            try:
                for index in range(spec.instances):
                    service.processes.append(self._start_instance(service, index))
            except PermanentError:
                stop_processes(service.processes, grace_s=self.grace_s)
                self._forget_pids(service.processes)
                raise
            self._services[spec.name] = service
            return self._status(service)

    def service_status(self, name: str) -> ServiceStatus | None:  # noqa: D102
        with self._lock:
            service = self._services.get(name)
            return None if service is None else self._status(service)

    def service_address(self, name: str) -> str | None:  # noqa: D102
        status = self.service_status(name)
        return None if status is None else status.address

    def service_logs(self, name: str) -> dict[str, str]:
        """Return each instance's output; removed services' logs stay readable from disk."""
        with self._lock:
            service = self._services.get(name)
            paths = [(p.name, p.log_path) for p in service.processes] if service else []
        if service is None:
            directory = self.workdir / "services" / name
            if "/" in name or name.startswith(".") or not directory.is_dir():
                raise NotFoundError(f"service {name} not found")
            paths = [(p.stem, p) for p in sorted(directory.glob("*.log"))]
        return {instance: _tail(path, 1_000_000) for instance, path in paths}

    def remove_service(self, name: str) -> bool:  # noqa: D102
        with self._lock:
            service = self._services.pop(name, None)
        if service is None:
            return False
        stop_processes(service.processes, grace_s=self.grace_s)
        self._forget_pids(service.processes)
        return True

    def list_clusters(self) -> list[Cluster]:  # noqa: D102
        return [Cluster(id="local", name="local")]

    def close(self) -> None:
        """Stop every service (all at once, so the grace periods do not add up)."""
        with self._lock:
            services = list(self._services.values())
            self._services.clear()
        processes = [p for service in services for p in service.processes]
        stop_processes(processes, grace_s=self.grace_s)
        self._forget_pids(processes)
        if self.warm is not None:
            self.warm.close()
