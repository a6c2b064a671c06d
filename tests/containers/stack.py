"""The manager on the Docker backend (Podman's Docker API), as session fixtures.

The manager runs as a process with ``FLOPS_ORCHESTRATOR_URI=docker+unix://...``: its builder is
itself a container (``containers/image-builder.Containerfile``, privileged, buildah inside) that
reads repositories under ``repos_root`` (mounted read-only) and pushes images to the session's
registry, from the multi-platform base image there; components log to an MLflow server and
publish events to a Mosquitto broker on the host.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import pytest
import requests

from tests.fixtures.podman import (
    BUILDER_STORAGE_VOLUME,
    build_builder_image,
    builder_mounts,
    stop,
)
from tests.fixtures.servers import MosquittoServer, free_port, wait_for

HOST = "host.containers.internal"


def host_address() -> str:
    """This host's primary IP address: containers reach it, and unlike ``HOST`` it also
    resolves on the host, where the manager checks its dependencies' names at start."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("10.255.255.255", 1))  # no packet is sent: picks the outgoing address
        return str(sock.getsockname()[0])


TOKEN = "tok-" + uuid.uuid4().hex[:8]


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _http_ok(url: str, headers: dict[str, str] | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, headers=headers, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    return check


@pytest.fixture(scope="session")
def builder_image(base_image: str) -> str:
    """FLOps' image builder service image, built from this tree (layers cached by buildah)."""
    return build_builder_image(base_image)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Mosquitto on all addresses (containers reach it as host.containers.internal)."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"), host="0.0.0.0").start()
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An MLflow server on the host (``python -m tracking_server``) on all addresses."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, "FLOPS_LISTEN_ADDRESS": f"0.0.0.0:{port}",
           "FLOPS_DATA_DIR": str(root / "data"),
           "FLOPS_ALLOWED_HOSTS": json.dumps([HOST, host_address()])}
    proc = _start([sys.executable, "-m", "tracking_server"], env, root / "mlflow.log")
    try:
        wait_for(_http_ok(f"http://127.0.0.1:{port}/health"), timeout=120, what="MLflow server")
        yield port
    finally:
        stop(proc)


class Manager:
    def __init__(self, base: str) -> None:
        self.base = base + "/api/v1"
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(f"{self.base}/{path}", json=body, headers=self.headers, timeout=30)

    def delete(self, path: str) -> requests.Response:
        return requests.delete(f"{self.base}/{path}", headers=self.headers, timeout=30)

    def project(self, pid: str) -> dict[str, Any]:
        response = requests.get(f"{self.base}/projects/{pid}", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def events(self, pid: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.base}/projects/{pid}/events", params={"limit": 1000},
                                headers=self.headers, timeout=30)
        return [e["event"] for e in response.json()["items"]]


@pytest.fixture(scope="session")
def engine(podman_socket: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=podman_socket)
    yield client
    client.close()


@pytest.fixture(scope="session")
def storage_volume() -> str:
    """The builder container's storage volume (its layer cache, kept between sessions)."""
    return BUILDER_STORAGE_VOLUME


@pytest.fixture(scope="session")
def manager(tmp_path_factory: pytest.TempPathFactory, podman_socket: str, registry: str,
            registry_base_image: str, builder_image: str, broker: int, mlflow_port: int,
            storage_volume: str, repos_root: Path, node_image: str) -> Iterator[Manager]:
    """The manager on the Docker backend; mock data providers run in the node image (it holds
    FLOps' runtime, as the runtime image does)."""
    root = tmp_path_factory.mktemp("manager")
    cache = root / "build-cache"
    cache.mkdir()
    mounts, ca_env = builder_mounts(storage_volume, cache, repos_root)
    query = "&".join(["builder_network=host", *(f"builder_mount={m}" for m in mounts)])
    port = free_port()
    env = {
        **os.environ,
        "FLOPS_PORT": str(port), "FLOPS_STORE_URI": "memory://", "FLOPS_DATA_DIR": str(root),
        # containers enroll at the manager through the host alias
        "FLOPS_HOST": "0.0.0.0", "FLOPS_COMPONENT_API_URL": f"http://{HOST}:{port}",
        "FLOPS_API_TOKENS": json.dumps({TOKEN: "alice"}),
        "FLOPS_MQTT_URL": f"mqtt://127.0.0.1:{broker}",
        "FLOPS_MQTT_CLIENT_ID": "mgr-" + uuid.uuid4().hex[:8],
        "FLOPS_EVENTS_URI": f"mqtt://{HOST}:{broker}",
        "FLOPS_TRACKING_URI": f"http://{host_address()}:{mlflow_port}",
        "FLOPS_ORCHESTRATOR_URI": podman_socket.replace("unix://", "docker+unix://") + "?" + query,
        "FLOPS_REGISTRY": registry, "FLOPS_REGISTRY_TLS_VERIFY": "false",
        "FLOPS_BASE_IMAGE": registry_base_image, "FLOPS_BUILDER_IMAGE": builder_image,
        "FLOPS_DATAPLANE_IMAGE": node_image, "FLOPS_BUILDER_CACHE_DIR": str(cache),
        "FLOPS_ALLOW_LOCAL_REPOS": "true",
        "FLOPS_RECONCILE_INTERVAL_S": "0.5", **ca_env,
    }
    log = root / "manager.log"
    proc = _start([sys.executable, "-m", "flops_manager"], env, log)
    try:
        wait_for(_http_ok(f"http://127.0.0.1:{port}/ready",
                          {"Authorization": f"Bearer {TOKEN}"}), timeout=300,
                 what="manager /ready")
        yield Manager(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)
        print(log.read_text()[-5000:])


def project_containers(engine: docker.DockerClient, pid: str) -> list[dict[str, Any]]:
    """The project's containers (one list call: no per-container inspect that races removal)."""
    return list(engine.api.containers(all=True, filters={"label": f"io.flops.project={pid}"}))


def container_log_tails(engine: docker.DockerClient, containers: list[dict[str, Any]],
                        lines: int = 25) -> str:
    """The last ``lines`` log lines of each container, for a failure message (best effort)."""
    tails = []
    for c in containers:
        name = (c.get("Names") or ["?"])[0].lstrip("/")
        try:
            text = engine.api.logs(c["Id"], tail=lines).decode(errors="replace")
        except Exception as exc:  # noqa: BLE001 - a removed container must not hide the failure
            text = f"(no log: {exc})"
        tails.append(f"\n--- {name} ({c.get('State', '?')}, {c.get('Status', '')}) ---\n{text}")
    return "".join(tails)


def wait_phase(mgr: Manager, engine: docker.DockerClient, pid: str, phase: str,
                timeout: float, seen: dict[str, set[str]]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        project = mgr.project(pid)
        try:
            containers = project_containers(engine, pid)
        except requests.RequestException as exc:  # an engine busy for a minute (other jobs'
            print(f"container listing skipped: {exc}")  # pulls): observe on the next poll
            containers = []
        for c in containers:
            role = (c.get("Labels") or {}).get("io.flops.role", "?")
            seen.setdefault(role, set()).update(n.lstrip("/") for n in c.get("Names") or [])
        if project["phase"] == phase:
            return project
        if project["phase"] in ("failed", "cancelled"):
            raise AssertionError(f"project {pid} {project['phase']}: {project['last_error']}"
                                 + container_log_tails(engine, containers))
        if time.monotonic() > deadline:
            raise AssertionError(f"phase {phase!r} not reached within {timeout:.0f} s: phase "
                                 f"{project['phase']}, error {project['last_error']}")
        time.sleep(1)


def round_durations(client: Any, run_id: str) -> list[float]:
    """The run's ``round_duration_s`` per round, in round order (for the benchmark notes)."""
    history = client.get_metric_history(run_id, "round_duration_s")
    return [round(m.value, 1) for m in sorted(history, key=lambda m: m.step)]
