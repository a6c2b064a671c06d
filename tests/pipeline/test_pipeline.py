"""The whole pipeline through the REST API on the local backend, with the real embedded stack.

A ``flops up`` stack (Mosquitto or amqtt, MLflow server, manager with the embedded database and
the local orchestrator) runs once for the module; projects are submitted with ``requests`` from
Git repositories made here. Every wait has a deadline and fails naming what it waited for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.tracking import MlflowClient

from flops_manager.cli import demo, stack
from tests.fixtures.repos import git_repo, processes_mentioning

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits_sklearn"


class Api:
    """The stack's REST API with the local user's token."""

    def __init__(self, record: dict[str, Any], directory: Path) -> None:
        self.base = record["api_url"] + "/api/v1"
        self.headers = {"Authorization": f"Bearer {stack.api_token(directory)}"}
        self.mlflow_url = record["mlflow_url"]

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(f"{self.base}/{path}", json=body, headers=self.headers, timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.base}/{path}", params=params, headers=self.headers,
                                timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def project(self, pid: str) -> dict[str, Any]:
        return dict(self.get(f"projects/{pid}"))

    def events(self, pid: str) -> list[dict[str, Any]]:
        return [e["event"] for e in self.get(f"projects/{pid}/events", limit=1000)["items"]]

    def wait(self, pid: str, done: Callable[[dict[str, Any]], bool], *, timeout: float,
             what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        project = self.project(pid)
        while not done(project):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout:.0f} s: phase "
                                     f"{project['phase']}, error {project['last_error']}")
            if project["phase"] in ("failed", "cancelled") and project["phase"] not in what:
                raise AssertionError(f"project {pid} {project['phase']}: "
                                     f"{project['last_error']}")
            time.sleep(0.5)
            project = self.project(pid)
        return project


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("flops-stack")
    record = stack.start_stack(directory)
    try:
        yield Api(record, directory)
    finally:
        stack.stop_stack(directory)


@pytest.fixture(scope="module")
def digits_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    return git_repo(tmp_path_factory.mktemp("repos") / "digits", DIGITS).as_uri()


def wait_ping(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"inference server at {url} never answered /ping"
        time.sleep(0.5)


def wait_deployment(api: Api, pid: str, deployment_id: str, timeout: float = 120) -> Any:
    """The deployment once the reconciler created it (with an address); fail if it failed."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = api.get(f"projects/{pid}/deployments/{deployment_id}")
        assert deployment["state"] != "failed", deployment["message"]
        if deployment["address"]:
            return deployment
        assert time.monotonic() < deadline, f"deployment never got an address: {deployment}"
        time.sleep(0.5)


def wait_down(url: str, timeout: float = 60) -> None:
    """Wait until nothing answers at ``url`` any more (the reconciler removed the server)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(f"{url}/ping", timeout=5)
        except requests.ConnectionError:
            return
        assert time.monotonic() < deadline, f"the server at {url} still answers"
        time.sleep(0.5)


def digits_spec(rounds: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "name": "digits-e2e",
        "training": {"rounds": rounds, "learners": 3},
        "mock_data": {"partitioner": "dirichlet", "alpha": 0.5, "seed": demo.SEED,
                      "holdout_fraction": demo.HOLDOUT_FRACTION},
        **extra,
    }


def test_rest_pipeline_trains_registers_and_serves(api: Api, digits_repo: str) -> None:
    spec = digits_spec(post_training_steps=["build_image_for_trained_model",
                                            "deploy_trained_model_image"])
    created = api.post("projects", {"repository": {"url": digits_repo}, "spec": spec})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    project = api.wait(pid, lambda p: p["phase"] == "serving" and p["links"]["inference"],
                       timeout=900, what="serving with an endpoint")
    # MLflow has the run with one step per round and the registered model
    model = project["model"]
    client = MlflowClient(tracking_uri=api.mlflow_url, registry_uri=api.mlflow_url)
    history = client.get_metric_history(model["mlflow_run_id"], "accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3]
    version = client.get_model_version(model["registered_model"], model["model_version"])
    assert version.status == "READY"
    # the endpoint answers for digits no learner saw
    url = project["links"]["inference"]
    wait_ping(url)
    check = demo.check_endpoint(url)
    assert check["accuracy"] >= 0.85, check
    # every phase change, in order, in the event list
    phases = [e["data"]["to"] for e in api.events(pid) if e["event"] == "phase_changed"]
    assert phases == ["building", "deploying", "training", "post_training", "serving"]
    # a second inference server through the deployments API: deploy, call, undeploy, gone
    other = api.post(f"projects/{pid}/deployments", {"instances": 1})
    assert other.status_code == 201, other.text
    assert other.json()["model_uri"] == model["registry_uri"]
    # the request recorded the deployment; the reconciler creates it
    deployment = wait_deployment(api, pid, other.json()["id"])
    wait_ping(deployment["address"])
    assert demo.check_endpoint(deployment["address"])["accuracy"] == check["accuracy"]
    assert requests.delete(f"{api.base}/projects/{pid}/deployments/{deployment['id']}",
                           headers=api.headers, timeout=30).status_code == 202
    assert api.get(f"projects/{pid}/deployments")["items"] == []
    wait_down(deployment["address"])
    wrong = api.post(f"projects/{pid}/deployments", {"model_uri": "models:/someone-else/1"})
    assert wrong.status_code in (409, 422) and "does not belong" in wrong.text
    # deleting the project removes every inference server (one more deployed first)
    assert api.post(f"projects/{pid}/deployments", {}).status_code == 201
    assert requests.delete(f"{api.base}/projects/{pid}", headers=api.headers,
                           timeout=30).status_code == 202
    deadline = time.monotonic() + 60
    while processes_mentioning(pid):
        assert time.monotonic() < deadline, f"processes of {pid} left: {processes_mentioning(pid)}"
        time.sleep(0.5)


def test_second_submission_reuses_the_environment(api: Api, digits_repo: str) -> None:
    body = {"repository": {"url": digits_repo}, "spec": digits_spec(rounds=1)}
    first = api.post("projects", body).json()["id"]
    api.wait(first, lambda p: p["phase"] == "completed", timeout=600, what="first completed")
    second = api.post("projects", body).json()["id"]
    project = api.wait(second, lambda p: p["build"] is not None, timeout=120,
                       what="second build")
    assert project["build"]["cache_hit"] is True
    assert project["build"]["commit"] == api.project(first)["build"]["commit"]
    api.wait(second, lambda p: p["phase"] == "completed", timeout=600, what="second completed")


def test_cancel_during_training_leaves_no_process(api: Api, digits_repo: str) -> None:
    spec = digits_spec(rounds=500)
    pid = api.post("projects", {"repository": {"url": digits_repo}, "spec": spec}).json()["id"]
    api.wait(pid, lambda p: p["phase"] == "training" and p["progress"]["round"] >= 1,
             timeout=600, what="training round 1")
    assert processes_mentioning(pid), "the project's processes should be running"
    response = api.post(f"projects/{pid}/cancel")
    assert response.status_code == 202, response.text
    project = api.wait(pid, lambda p: p["phase"] == "cancelled" and not p["pending_actions"],
                       timeout=60, what="cancelled")
    assert project["last_error"] == "cancelled"
    deadline = time.monotonic() + 30
    while processes_mentioning(pid):
        assert time.monotonic() < deadline, f"processes of {pid} left: {processes_mentioning(pid)}"
        time.sleep(0.2)


def test_contract_violation_fails_with_the_builders_message(
    api: Api, tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "bad", {
        "model_manager.py": "class SomethingElse:\n    pass\n",
        "requirements.txt": "",
    })
    started = time.monotonic()
    pid = api.post("projects", {"repository": {"url": repo.as_uri()},
                                "spec": {"training": {"rounds": 1}}}).json()["id"]
    project = api.wait(pid, lambda p: p["phase"] == "failed", timeout=60, what="failed")
    assert time.monotonic() - started < 60
    assert "builder" in project["last_error"]
    assert "ModelManager" in project["last_error"], project["last_error"]
    builder = [e for e in api.events(pid) if e["component"] == "builder" and
               e["event"] == "failed"]
    assert builder and builder[0]["data"]["message"] in project["last_error"]


def test_cli_lists_watches_and_shows_logs(api: Api, digits_repo: str, tmp_path: Path) -> None:
    """``flops project`` against a remote manager (FLOPS_API_URL / FLOPS_API_TOKEN)."""
    env = {**os.environ, "FLOPS_API_URL": api.base.removesuffix("/api/v1"),
           "FLOPS_API_TOKEN": api.headers["Authorization"].removeprefix("Bearer ")}
    project_file = tmp_path / "project.yaml"
    project_file.write_text(json.dumps({"spec": digits_spec(rounds=2)}), encoding="utf-8")

    def flops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flops_manager.cli.main", "project", *args],
                              env=env, capture_output=True,
                              text=True, timeout=900, check=False)

    missing = flops("create", "-f", str(project_file))
    assert missing.returncode == 1 and "--repo" in missing.stderr
    created = flops("create", "-f", str(project_file), "--repo", digits_repo, "--json",
                    "--watch")
    assert created.returncode == 0, created.stderr
    pid = json.loads(created.stdout.splitlines()[0])["id"]  # --json: one object per line
    watched = flops("watch", pid)
    assert "round 2/2" in watched.stdout and "training -> completed" in watched.stdout
    listed = json.loads(flops("list", "--json").stdout)
    assert pid in [p["id"] for p in listed["items"]]
    logs = flops("logs", pid, "--component", "aggregator", "--lines", "50")
    assert logs.returncode == 0 and f"{pid}-aggregator-0 |" in logs.stdout
    bad = flops("status", "p000000000000dead")
    assert bad.returncode == 1 and "404" in bad.stderr
