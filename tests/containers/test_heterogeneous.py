"""A heterogeneous federation on the Docker backend: an arm64 learner next to an amd64 one.

The project asks for images of both platforms and one learner per platform
(``learner_platforms``); the manager's builder container builds both platforms and pushes one
manifest list per role (its emulation check reads the engine host's binfmt_misc handlers that
the Docker backend mounts into it). A registry tag someone else pushed is never a cache hit,
so it builds even when the multi-arch test pushed the same repository; its layer cache (the
builder storage volume kept between sessions) holds the arm64 dependency layers after the
first run on a machine. The manager runs each learner's variant by digest: the arm64 one
under qemu emulation, against one amd64 aggregator.
The project completes with the usual accuracy, and each container's architecture is proven in
its image config and inside (``uname -m``) while it trains.
"""

from __future__ import annotations

import time
from typing import Any

import docker  # type: ignore[import-untyped]
import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.servers import wait_for

from .stack import Manager, project_containers, round_durations, wait_phase

pytestmark = pytest.mark.integration

UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def _architectures(engine: docker.DockerClient, pid: str, timeout: float) -> dict[str, str]:
    """Container name -> ``uname -m`` inside, for each learner and aggregator, once running."""
    def running() -> list[dict[str, Any]]:
        found = [c for c in project_containers(engine, pid)
                 if (c.get("Labels") or {}).get("io.flops.role") in ("learners", "aggregator")]
        return found if len(found) == 3 and all(c["State"] == "running" for c in found) else []

    wait_for(lambda: bool(running()), timeout=timeout, what="aggregator and learners running")
    machines = {}
    for summary in running():
        container = engine.containers.get(summary["Id"])
        code, output = container.exec_run(["uname", "-m"])
        assert code == 0, output
        machines[container.name] = output.decode().strip()
    return machines


def _image_platform(engine: docker.DockerClient, name: str) -> str:
    image = engine.images.get(engine.containers.get(name).attrs["Image"])
    return f"{image.attrs['Os']}/{image.attrs['Architecture']}"


@pytest.mark.timeout(3600)  # a first run on a machine builds the arm64 variant under emulation
def test_arm64_and_amd64_learners_train_one_model(
        manager: Manager, engine: docker.DockerClient, edge_repo_url: str,
        mlflow_port: int) -> None:
    spec = {"name": "digits-edge", "training": {"rounds": 2, "learners": 2},
            "platforms": list(UNAME), "learner_platforms": list(UNAME),
            "model": {"registered_model_name": "digits-edge"}}
    created = manager.post("projects", {"repository": {"url": edge_repo_url}, "spec": spec})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    seen: dict[str, set[str]] = {}
    wait_phase(manager, engine, pid, "training", 3000, seen)
    machines = _architectures(engine, pid, timeout=600)
    platforms = {name: _image_platform(engine, name) for name in machines}
    project = wait_phase(manager, engine, pid, "completed", 1200, seen)

    learners = sorted(name for name in machines if "learners" in name)
    assert [platforms[n] for n in learners] == list(UNAME), platforms
    assert [machines[n] for n in learners] == list(UNAME.values()), machines
    aggregator = next(name for name in machines if name not in learners)
    assert (platforms[aggregator], machines[aggregator]) == ("linux/amd64", "x86_64")
    variants = project["build"]["variants"]["learner"]
    assert set(variants) == set(UNAME)

    model = project["model"]
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{mlflow_port}")
    history = client.get_metric_history(model["mlflow_run_id"], "accuracy")
    assert sorted(m.step for m in history) == [1, 2]
    assert max(m.value for m in history) > 0.8
    answered = client.get_metric_history(model["mlflow_run_id"], "learners_answered")
    assert [m.value for m in sorted(answered, key=lambda m: m.step)] == [2, 2]
    print("heterogeneous (amd64 + arm64 learner) round_duration_s:",
          round_durations(client, model["mlflow_run_id"]))

    start = time.monotonic()
    assert manager.delete(f"projects/{pid}").status_code == 202
    wait_for(lambda: not project_containers(engine, pid), timeout=180,
             what=f"removal of the containers of {pid}")
    print(f"heterogeneous project removed in {time.monotonic() - start:.1f} s")
