"""State of the contract server: users, tokens, applications, jobs, clusters, processes.

Deployed instances really run: each instance is a local process started by ``LocalOrchestrator``
(``python`` = this interpreter, or the environment's for ``env://<dir>`` images; SLA environment
as process environment), and the instance status follows the process (RUNNING, COMPLETED/DEAD on
exit 0, FAILED otherwise).

Single-host networking: when a service's round-robin IP is a loopback address (the backend's
``FLOPS_OAKESTRA_RR_SUBNET=127.30.0.0/16``), every environment value ``0.0.0.0:<port>`` (the
backend's ``listen_env``) becomes ``<rr ip>:<port>``, so each service listens on its own address
and many services share a port on one host, as behind Oakestra's round-robin IPs; such
instances report that address as their public IP. Otherwise instances listen on ``0.0.0.0`` and
report ``127.0.0.1``.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from flops_manager.adapters.local_orchestrator import LocalOrchestrator
from flops_manager.ports.errors import PermanentError
from flops_manager.ports.orchestrator import ServiceSpec, ServiceState

DATA = Path(__file__).parent / "data"
SCHEMAS = {
    "v0.4.400": DATA / "sla_schema_v0.4.400.json",
    "v0.4.410": DATA / "sla_schema.json",
    "v0.4.411": DATA / "sla_schema.json",
}
ADMIN_ROLES = ["Admin", "Organization_Admin", "Application_Provider", "Infrastructure_Provider"]


def new_id() -> str:
    return secrets.token_hex(12)


def loopback_rr_ip(job: dict[str, Any]) -> str | None:
    """The job's round-robin IP if it is a loopback address (reachable on this host)."""
    raw = job.get("RR_ip")
    try:
        return raw if isinstance(raw, str) and ipaddress.IPv4Address(raw).is_loopback else None
    except ValueError:
        return None


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@dataclasses.dataclass
class RecordedRequest:
    method: str
    path: str
    body: str
    authorization: str | None


@dataclasses.dataclass
class Fault:
    status: int
    remaining: int
    path_prefix: str = "/"
    method: str | None = None


class OakestraState:
    """Everything the fake system manager knows, plus the test hooks."""

    def __init__(self, workdir: Path, *, version: str = "v0.4.411", fixed_encoding: bool = False,
                 access_lifetime_s: float = 600.0) -> None:
        self.version = version
        self.fixed_encoding = fixed_encoding
        self.access_lifetime_s = access_lifetime_s
        self.schema = json.loads(SCHEMAS[version].read_text())
        self.lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {
            "Admin": {"password": "Admin", "roles": list(ADMIN_ROLES), "oid": new_id()},
        }
        self.tokens: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.clusters: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.forced: dict[tuple[str, int], tuple[str, str]] = {}
        self.logins = 0
        self.refreshes = 0
        self.local = LocalOrchestrator(workdir, grace_s=2.0)

    # ------------------------------------------------------------------ test hooks

    def add_user(self, name: str, password: str, roles: list[str]) -> None:
        self.users[name] = {"password": password, "roles": roles, "oid": new_id()}

    def add_cluster(self, name: str, *, active: bool = True) -> str:
        cluster_id = new_id()
        self.clusters.append({"_id": cluster_id, "name": name, "active": active,
                              "location": f"loc-{name}"})
        return cluster_id

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (the next call gets 401)."""
        with self.lock:
            for info in self.tokens.values():
                if info["type"] == "access":
                    info["exp"] = 0

    def inject_failure(self, status: int = 503, *, times: int = 1, path_prefix: str = "/api/",
                       method: str | None = None) -> None:
        self.faults.append(Fault(status, times, path_prefix, method))

    def force_status(self, job_id: str, number: int, status: str = "FAILED",
                     detail: str = "injected failure") -> None:
        """Report ``status`` for one instance from now on, whatever its process does."""
        with self.lock:
            self.forced[(job_id, number)] = (status, detail)

    def jobs_named(self, flops_name: str) -> list[dict[str, Any]]:
        """Jobs whose environment has ``FLOPS_SERVICE_NAME=<flops_name>``."""
        entry = f"FLOPS_SERVICE_NAME={flops_name}"
        with self.lock:
            return [j for j in self.jobs.values() if entry in (j.get("environment") or [])]

    def instance_pids(self, job_id: str) -> list[int]:
        pids = []
        for instance in self.jobs.get(job_id, {}).get("instance_list", []):
            proc = self._process(job_id, instance["instance_number"])
            if proc is not None:
                pids.append(proc)
        return pids

    def bodies(self) -> str:
        return "\n".join(r.body for r in self.requests)

    def close(self) -> None:
        self.local.close()

    # ------------------------------------------------------------------ tokens

    def issue(self, user: str, kind: str) -> str:
        now = time.time()
        lifetime = self.access_lifetime_s if kind == "access" else 7 * 86400
        claims = {"sub": user, "type": kind, "iat": int(now), "exp": now + lifetime,
                  "jti": new_id(), "roles": self.users[user]["roles"]}
        token = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}.{secrets.token_hex(8)}"
        self.tokens[token] = {"user": user, "type": kind, "exp": claims["exp"]}
        return token

    # ------------------------------------------------------------------ processes

    def _instance_name(self, job_id: str, number: int) -> str:
        return f"{job_id}-{number}"

    def _process(self, job_id: str, number: int) -> int | None:
        service = self.local._services.get(self._instance_name(job_id, number))
        if service is None or not service.processes:
            return None
        return service.processes[0].popen.pid

    def start_instance(self, job: dict[str, Any], instance: dict[str, Any]) -> None:
        env = {}
        host = loopback_rr_ip(job)
        for entry in job.get("environment") or []:
            key, _, value = entry.partition("=")
            if host is not None and value.startswith("0.0.0.0:"):
                value = f"{host}:{value.removeprefix('0.0.0.0:')}"
            env[key] = value
        spec = ServiceSpec(name=self._instance_name(job["microserviceID"],
                                                    instance["instance_number"]),
                           role=job["microservice_namespace"], image=job.get("code", ""),
                           command=tuple(job.get("cmd") or ()), env=env)
        try:
            self.local.create_service(spec)
        except PermanentError as exc:
            instance["status"] = "FAILED"
            instance["status_detail"] = str(exc)

    def stop_instance(self, job_id: str, number: int) -> None:
        self.local.remove_service(self._instance_name(job_id, number))

    def refresh(self, job: dict[str, Any]) -> None:
        """Write what a cluster report would: per-instance status from the real processes."""
        for instance in job.get("instance_list", []):
            status = self.local.service_status(
                self._instance_name(job["microserviceID"], instance["instance_number"]))
            if status is None:
                continue
            if status.state is ServiceState.RUNNING:
                value, detail = "RUNNING", "running"
            elif status.state is ServiceState.STOPPED:
                value, detail = ("COMPLETED" if job.get("one_shot") else "DEAD"), "exited 0"
            else:
                value, detail = "FAILED", status.message or "failed"
            forced = self.forced.get((job["microserviceID"], instance["instance_number"]))
            if forced is not None:
                value, detail = forced
            logs = self.local.service_logs(
                self._instance_name(job["microserviceID"], instance["instance_number"]))
            public_ip = loopback_rr_ip(job) or "127.0.0.1"
            report: dict[str, Any] = {"status": value, "status_detail": detail,
                                      "publicip": public_ip, "disk": "0",
                                      "logs": "".join(logs.values())[-1000:]}
            if self.version == "v0.4.400":
                report.update({"cpu": 1.0, "memory": 2.0})
            else:
                report.update({"cpu_percent": 1.0, "memory_percent": 2.0, "worker_id": "w1",
                               "host_ip": public_ip, "host_port": 0,
                               "last_modified_timestamp": time.time()})
            instance.update(report)
            job["status"], job["status_detail"] = value, detail
