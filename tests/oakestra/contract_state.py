"""State of the contract server: users, tokens, applications, jobs, clusters, processes.

Deployed instances really run: each instance is a local process started by ``LocalOrchestrator``
(image ignored, ``python`` = this interpreter, SLA environment as process environment), and the
instance status follows the process (RUNNING, COMPLETED/DEAD on exit 0, FAILED otherwise).
"""

from __future__ import annotations

import base64
import dataclasses
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
        service = self.local._services.get(self._instance_name(job_id, number))  # noqa: SLF001
        if service is None or not service.processes:
            return None
        return service.processes[0].popen.pid

    def start_instance(self, job: dict[str, Any], instance: dict[str, Any]) -> None:
        env = {}
        for entry in job.get("environment") or []:
            key, _, value = entry.partition("=")
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
            logs = self.local.service_logs(
                self._instance_name(job["microserviceID"], instance["instance_number"]))
            report: dict[str, Any] = {"status": value, "status_detail": detail,
                                      "publicip": "127.0.0.1", "disk": "0",
                                      "logs": "".join(logs.values())[-1000:]}
            if self.version == "v0.4.400":
                report.update({"cpu": 1.0, "memory": 2.0})
            else:
                report.update({"cpu_percent": 1.0, "memory_percent": 2.0, "worker_id": "w1",
                               "host_ip": "127.0.0.1", "host_port": 0,
                               "last_modified_timestamp": time.time()})
            instance.update(report)
            job["status"], job["status_detail"] = value, detail
