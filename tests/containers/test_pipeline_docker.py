"""A whole project through the manager on the Docker backend (Podman's Docker API), for real.

The manager runs as a process with ``FLOPS_ORCHESTRATOR_URI=docker+unix://...``: the builder is
itself a container (``containers/image-builder.Containerfile``, privileged, buildah inside with
``--isolation chroot``) that builds the learner and aggregator images of a local repository and
pushes them to a docker-registry on a loopback port; the aggregator and learners then run as
containers, log to an MLflow server on the host and register the model. The repository carries
its own ``main.py``, ``Dockerfile`` and ``requirements.txt`` (FLOps must use none of the first
two and must not clobber them). Deleting the project leaves no container and no network.
"""

from __future__ import annotations

import json
import os
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
from mlflow.tracking import MlflowClient

from tests.fixtures.podman import build_builder_image, builder_mounts, push_base_image, stop
from tests.fixtures.servers import MosquittoServer, free_port, wait_for

from .conftest import make_repo

pytestmark = pytest.mark.integration

HOST = "host.containers.internal"
TOKEN = "tok-" + uuid.uuid4().hex[:8]
USER_FILES = {
    # The user's own entry point and Dockerfile: FLOps must neither run nor overwrite them.
    "main.py": "raise SystemExit('the user main.py must not be run by FLOps')\n",
    "Dockerfile": "FROM scratch\nCMD [\"the-users-own-image\"]\n",
}


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


@pytest.fixture(scope="module")
def registry_base_image(base_image: str, registry: str) -> str:
    """The local base image in the registry: nested buildah pulls it from there."""
    return push_base_image(base_image, registry)


@pytest.fixture(scope="module")
def builder_image(base_image: str) -> str:
    """FLOps' image builder service image, built from this tree (layers cached by buildah)."""
    return build_builder_image(base_image)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Mosquitto on all addresses (containers reach it as host.containers.internal)."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"), host="0.0.0.0").start()
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An MLflow server on the host (``python -m tracking_server``) on all addresses."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, "FLOPS_LISTEN_ADDRESS": f"0.0.0.0:{port}",
           "FLOPS_DATA_DIR": str(root / "data"), "FLOPS_ALLOWED_HOSTS": json.dumps([HOST])}
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


@pytest.fixture(scope="module")
def engine(podman_socket: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=podman_socket)
    yield client
    client.close()


@pytest.fixture(scope="module")
def storage_volume(engine: docker.DockerClient) -> Iterator[str]:
    """A named volume for the builder's container storage (its layer cache between builds)."""
    name = "flops-test-builder-storage-" + uuid.uuid4().hex[:6]
    yield name
    try:
        engine.volumes.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("docker-pipeline") / "digits", USER_FILES)


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, podman_socket: str, registry: str,
            registry_base_image: str, builder_image: str, broker: int, mlflow_port: int,
            storage_volume: str, user_repo: Path) -> Iterator[Manager]:
    root = tmp_path_factory.mktemp("manager")
    cache = root / "build-cache"
    cache.mkdir()
    mounts, ca_env = builder_mounts(storage_volume, cache, user_repo)
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
        "FLOPS_TRACKING_URI": f"http://{HOST}:{mlflow_port}",
        "FLOPS_ORCHESTRATOR_URI": podman_socket.replace("unix://", "docker+unix://") + "?" + query,
        "FLOPS_REGISTRY": registry, "FLOPS_REGISTRY_TLS_VERIFY": "false",
        "FLOPS_BASE_IMAGE": registry_base_image, "FLOPS_BUILDER_IMAGE": builder_image,
        "FLOPS_BUILDER_CACHE_DIR": str(cache), "FLOPS_ALLOW_LOCAL_REPOS": "true",
        "FLOPS_RECONCILE_INTERVAL_S": "0.5", **ca_env,
    }
    log = root / "manager.log"
    proc = _start([sys.executable, "-m", "flops_manager"], env, log)
    try:
        wait_for(_http_ok(f"http://127.0.0.1:{port}/ready",
                          {"Authorization": f"Bearer {TOKEN}"}), timeout=60,
                 what="manager /ready")
        yield Manager(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)
        print(log.read_text()[-5000:])


def _project_containers(engine: docker.DockerClient, pid: str) -> list[dict[str, Any]]:
    """The project's containers (one list call: no per-container inspect that races removal)."""
    return list(engine.api.containers(all=True, filters={"label": f"io.flops.project={pid}"}))


def _wait_phase(mgr: Manager, engine: docker.DockerClient, pid: str, phase: str,
                timeout: float, seen: dict[str, set[str]]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        project = mgr.project(pid)
        for c in _project_containers(engine, pid):
            role = (c.get("Labels") or {}).get("io.flops.role", "?")
            seen.setdefault(role, set()).update(n.lstrip("/") for n in c.get("Names") or [])
        if project["phase"] == phase:
            return project
        if project["phase"] in ("failed", "cancelled"):
            raise AssertionError(f"project {pid} {project['phase']}: {project['last_error']}")
        if time.monotonic() > deadline:
            raise AssertionError(f"phase {phase!r} not reached within {timeout:.0f} s: phase "
                                 f"{project['phase']}, error {project['last_error']}")
        time.sleep(1)


@pytest.mark.timeout(2400)
def test_project_builds_trains_and_registers_in_containers(
        manager: Manager, engine: docker.DockerClient, user_repo: Path, registry: str,
        mlflow_port: int) -> None:
    spec = {"name": "digits-docker", "training": {"rounds": 2, "learners": 2},
            "model": {"registered_model_name": "digits-docker"}}
    created = manager.post("projects", {"repository": {"url": user_repo.as_uri()}, "spec": spec})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    seen: dict[str, set[str]] = {}
    project = _wait_phase(manager, engine, pid, "completed", 1800, seen)

    # the builder ran as a container and pushed both images to the registry
    assert "builder" in seen, seen
    build = project["build"]
    assert set(build["images"]) == {"learner", "aggregator"}
    assert all(ref.startswith(f"{registry}/flops/") for ref in build["images"].values())
    builder_done = [e for e in manager.events(pid)
                    if e["component"] == "builder" and e["event"] == "completed"]
    assert builder_done and builder_done[0]["data"]["images"] == build["images"]
    # the aggregator and the learners ran as containers of those images
    assert seen.get("aggregator") and len(seen.get("learners", set())) == 2, seen
    # MLflow on the host has one step per round and the registered model
    model = project["model"]
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{mlflow_port}",
                          registry_uri=f"http://127.0.0.1:{mlflow_port}")
    history = client.get_metric_history(model["mlflow_run_id"], "accuracy")
    assert sorted(m.step for m in history) == [1, 2]
    assert max(m.value for m in history) > 0.8
    version = client.get_model_version(model["registered_model"], model["model_version"])
    assert version.status == "READY"

    # the same repository again: the builder container finds both images in the registry
    again = manager.post("projects", {"repository": {"url": user_repo.as_uri()}, "spec": spec})
    assert again.status_code == 201, again.text
    second = again.json()["id"]
    deadline = time.monotonic() + 300
    while not (rebuilt := manager.project(second))["build"]:
        assert rebuilt["phase"] not in ("failed", "cancelled"), rebuilt["last_error"]
        assert time.monotonic() < deadline, f"second build not done: {rebuilt['phase']}"
        time.sleep(0.5)
    assert rebuilt["build"]["cache_hit"] is True
    assert rebuilt["build"]["images"] == build["images"]
    assert rebuilt["build"]["timings"]["total"] < 5.0, rebuilt["build"]["timings"]
    print("cold build in the builder container:", json.dumps(build["timings"]))
    print("warm build in the builder container:", json.dumps(rebuilt["build"]["timings"]))

    # deleting the projects (one completed, one deploying or training) leaves no container
    # and no network
    for project_id in (pid, second):
        assert manager.delete(f"projects/{project_id}").status_code == 202
    for project_id in (pid, second):
        wait_for(lambda p=project_id: not _project_containers(engine, p),  # type: ignore[misc]
                 timeout=180, what=f"removal of the containers of {project_id}")
        wait_for(lambda p=project_id: not engine.networks.list(names=[f"flops-{p}"]),  # type: ignore[misc]
                 timeout=60, what=f"removal of network flops-{project_id}")
