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
import time
from pathlib import Path

import docker  # type: ignore[import-untyped]
import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.servers import wait_for

from .conftest import make_repo
from .stack import Manager, project_containers, round_durations, wait_phase

pytestmark = pytest.mark.integration

USER_FILES = {
    # The user's own entry point and Dockerfile: FLOps must neither run nor overwrite them.
    "main.py": "raise SystemExit('the user main.py must not be run by FLOps')\n",
    "Dockerfile": "FROM scratch\nCMD [\"the-users-own-image\"]\n",
}


@pytest.fixture(scope="module")
def user_repo(repos_root: Path) -> Path:
    return make_repo(repos_root / "digits-docker", USER_FILES)


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
    project = wait_phase(manager, engine, pid, "completed", 1800, seen)

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
    print("amd64 learners round_duration_s:", round_durations(client, model["mlflow_run_id"]))
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
    # a hit builds and pushes nothing (how long it takes is bench/ business)
    assert not {"build_learner", "build_aggregator", "push"} & set(rebuilt["build"]["timings"])
    print("cold build in the builder container:", json.dumps(build["timings"]))
    print("warm build in the builder container:", json.dumps(rebuilt["build"]["timings"]))

    # deleting the projects (one completed, one deploying or training) leaves no container
    # and no network
    for project_id in (pid, second):
        assert manager.delete(f"projects/{project_id}").status_code == 202
    for project_id in (pid, second):
        wait_for(lambda p=project_id: not project_containers(engine, p),  # type: ignore[misc]
                 timeout=180, what=f"removal of the containers of {project_id}")
        wait_for(lambda p=project_id: not engine.networks.list(names=[f"flops-{p}"]),  # type: ignore[misc]
                 timeout=60, what=f"removal of network flops-{project_id}")
