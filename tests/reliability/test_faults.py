"""Fault injection on the real stack, through the manager's REST API, on both backends.

Every scenario runs on the local backend (components are processes) and on the Docker backend
(components are containers of Podman's Docker API; one image set and one stack shared by all
scenarios). Each test states the outcome it expects within a stated time, then checks that
nothing was lost or duplicated: unique event ids, contiguous sequence numbers, phase changes in
order, one round_completed per round and exactly one registered model version per completed
project.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.repos import commit_all
from tests.reliability.conftest import Scenario
from tests.reliability.harness import (
    Stack,
    check_event_log,
    registered_versions,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


DOCKER_SCENARIOS = ("test_aggregator_killed_fails_naming_it", "test_learner_gone_is_recreated")
"""Scenarios that also run on the Docker backend by default: the cold image build and each
containerised project cost minutes on 2 cores, so CI runs the two whose outcome depends most on
the backend (a container killed; a container removed behind FLOps' back).
``FLOPS_DOCKER_FAULTS=all`` runs every scenario on both backends."""


def _docker_backend_selected(test_name: str) -> bool:
    return os.environ.get("FLOPS_DOCKER_FAULTS") == "all" or test_name in DOCKER_SCENARIOS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``backend``: every scenario on local, the selected ones on Docker too."""
    if "backend" in metafunc.fixturenames:
        backends = ["local"]
        if _docker_backend_selected(metafunc.function.__name__):
            backends.append("docker")
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, backend: str) -> Stack:
    """The scenario's stack: the local one, or the Docker one (fails without Podman in CI)."""
    name = "stack" if backend == "local" else "docker_stack"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def learners_of(stack: Stack, pid: str, count: int = 3) -> list[str]:
    """Handles of the project's ``count`` running learner instances, in instance order."""
    found = wait_until(lambda: len(running := stack.instances(pid, f"{pid}-learners")) == count
                       and running, timeout=300, what=f"{count} learner instances")
    return [found[name] for name in sorted(found)]

ROUND_S = 3.0  # each learner's fit sleeps this long, so faults land mid-round
START_S = 900
"""Until a project trains: the first project of the Docker stack builds its images cold."""


def submit(stack: Stack, repo: str, cleanup: list[str], body_spec: dict[str, Any]) -> str:
    """Submit a project; it is removed after the test."""
    pid = stack.create(repo, body_spec)
    cleanup.append(pid)
    return pid


def own_dependencies_repo(repo_url: str, path: Path) -> str:
    """A copy of ``repo_url`` whose requirements no other project shares (one more exclusion
    that every version satisfies), so its environment is built, not found in the cache."""
    shutil.copytree(Path(urllib.parse.urlparse(repo_url).path), path,
                    ignore=shutil.ignore_patterns(".git"))
    with (path / "requirements.txt").open("a", encoding="utf-8") as requirements:
        requirements.write(f"numpy!=0.0.{uuid.uuid4().int % 10**9}\n")
    return commit_all(path).as_uri()


def wait_round(stack: Stack, pid: str, round_: int = 1) -> None:
    """Wait until the project trains and has completed round ``round_``."""
    stack.wait(pid, lambda p: p["phase"] == "training" and p["progress"]["round"] >= round_,
               timeout=START_S, what=f"training round {round_}")


def completes_with_one_model(stack: Stack, pid: str, name: str, *, timeout: float,
                             scenario: Scenario) -> dict[str, Any]:
    project = stack.wait(pid, lambda p: p["phase"] == "completed" and not p["pending_actions"],
                         timeout=timeout, what="completed")
    items = check_event_log(stack, pid)
    versions = registered_versions(stack, f"{name}-model", pid)
    assert len(versions) == 1, f"expected one registered version, got {versions}"
    assert project["model"]["model_version"] == versions[0].version
    scenario.observe(f"completed, round {project['progress']['round']}/"
                     f"{project['progress']['total_rounds']}, {len(items)} events without "
                     f"duplicates, 1 model version")
    return project


def test_learner_sigkill_mid_round(stack: Stack, slow_repo: str, scenario: Scenario,
                                   cleanup_projects: list[str]) -> None:
    scenario.declare("F1", "a learner killed (SIGKILL) mid-round; 3 learners, min_fit 2",
                     "completes within 300 s; learner_failed recorded; one model version")
    started = time.monotonic()
    name = "f1"
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(
        name=name, rounds=3, sleep_s=ROUND_S, min_fit_learners=2, min_evaluate_learners=2,
        min_available_learners=3))
    stack.wait(pid, lambda p: p["phase"] == "training", timeout=START_S, what="training")
    learners = learners_of(stack, pid)
    stack.wait(pid, lambda p: p["progress"]["round"] >= 1, timeout=120, what="round 1")
    time.sleep(ROUND_S / 2)  # deliberately inside round 2's fit (each fit sleeps ROUND_S)
    stack.signal(learners[0], signal.SIGKILL)
    completes_with_one_model(stack, pid, name, timeout=300, scenario=scenario)
    failed = [e for e in stack.events(pid) if e["event"]["event"] == "learner_failed"]
    assert failed, "the aggregator should report the killed learner"
    scenario.observe(f"learner_failed events: {len(failed)}; took "
                     f"{time.monotonic() - started:.0f} s")


def test_learner_sigstop_round_timeout(stack: Stack, slow_repo: str, scenario: Scenario,
                                       cleanup_projects: list[str]) -> None:
    timeout_s, rounds = 10, 3
    scenario.declare("F2", "a learner hangs (SIGSTOP) mid-training; round_timeout_s 10",
                     "rounds proceed without it after round_timeout_s; completes within "
                     f"rounds x round_timeout + 60 s = {rounds * timeout_s + 60} s of the stop")
    name = "f2"
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(
        name=name, rounds=rounds, sleep_s=1.0, min_fit_learners=2, min_evaluate_learners=2,
        min_available_learners=3, round_timeout_s=timeout_s))
    stack.wait(pid, lambda p: p["phase"] == "training", timeout=START_S, what="training")
    learners = learners_of(stack, pid)
    stack.wait(pid, lambda p: p["progress"]["round"] >= 1, timeout=120, what="round 1")
    stopped = time.monotonic()
    stack.signal(learners[1], signal.SIGSTOP)
    try:
        completes_with_one_model(stack, pid, name, timeout=rounds * timeout_s + 60,
                                 scenario=scenario)
    finally:
        with contextlib.suppress(Exception):  # removed with the project's services
            stack.signal(learners[1], signal.SIGCONT)
    took = time.monotonic() - stopped
    failed = [e["event"]["data"] for e in stack.events(pid)
              if e["event"]["event"] == "learner_failed"]
    assert failed, "the aggregator should report the timed-out learner"
    scenario.observe(f"ended {took:.0f} s after the stop; learner_failed: "
                     f"{failed[0].get('reasons')}")


def test_aggregator_killed_fails_naming_it(stack: Stack, slow_repo: str, scenario: Scenario,
                                           cleanup_projects: list[str]) -> None:
    scenario.declare("F3", "the aggregator killed (SIGKILL) mid-training",
                     "failed within 20 s, last_error names the aggregator; no process left")
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(name="f3", rounds=20,
                                                                 sleep_s=1.0))
    wait_round(stack, pid)
    [aggregator] = stack.instances(pid, f"{pid}-aggregator").values()
    killed = time.monotonic()
    stack.signal(aggregator, signal.SIGKILL)
    project = stack.wait_final(pid, timeout=20, what="failed after the aggregator's death")
    took = time.monotonic() - killed
    assert project["phase"] == "failed", project
    assert "aggregator" in project["last_error"], project["last_error"]
    check_event_log(stack, pid)
    wait_until(lambda: not stack.leftovers(pid), timeout=60,
               what=f"nothing of {pid} left")
    scenario.observe(f"failed after {took:.1f} s: {project['last_error'][:160]}")


def test_broker_restart_mid_training(stack: Stack, slow_repo: str, scenario: Scenario,
                                     cleanup_projects: list[str]) -> None:
    rounds = 4
    scenario.declare("F4", "the MQTT broker (Mosquitto) restarted mid-training (down 3 s)",
                     "completes within 240 s; every round_completed event arrives exactly once")
    name = "f4"
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(name=name, rounds=rounds,
                                                                    sleep_s=2.0))
    wait_round(stack, pid)
    started = time.monotonic()
    stack.broker.stop()
    time.sleep(3)  # deliberately: the outage lasts 3 s while the learners keep training
    stack.broker.start()
    completes_with_one_model(stack, pid, name, timeout=240, scenario=scenario)
    rounds_seen = [e["event"]["data"]["round"] for e in stack.events(pid)
                   if e["event"]["event"] == "round_completed"
                   and e["event"]["component"] == "aggregator"]
    assert rounds_seen == list(range(1, rounds + 1)), rounds_seen
    scenario.observe(f"rounds {rounds_seen} all recorded; completed "
                     f"{time.monotonic() - started:.0f} s after the restart began")
    observe_reconnections(stack, pid, scenario)


def observe_reconnections(stack: Stack, pid: str, scenario: Scenario) -> None:
    """The aggregator said ``online`` again after the outage; report the wills delivered.

    Mosquitto publishes the wills of the connections it drops; each was revoked by the
    ``online`` of its component's next connection within the manager's will grace.
    """
    events = [e["event"] for e in stack.events(pid)]
    connections = [e["data"].get("connection") for e in events
                   if e["event"] == "online" and e["component"] == "aggregator"]
    assert max(connections) >= 2, f"the aggregator did not reconnect: {connections}"
    wills = [f"{e['component']} #{e['data'].get('connection')}" for e in events
             if e["event"] == "lost"]
    scenario.observe(f"aggregator connections {connections}; wills delivered and revoked: "
                     f"{wills or 'none'}")


def test_broker_down_when_training_ends(stack: Stack, slow_repo: str, scenario: Scenario,
                                       cleanup_projects: list[str]) -> None:
    scenario.declare("F4b", "the MQTT broker down (10 s) while the aggregator registers the "
                     "model and reports completion",
                     "the aggregator keeps its 'completed' event until the broker is back; "
                     "the project completes within 120 s (never stuck in training)")
    name = "f4b"
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(name=name, rounds=2,
                                                                    sleep_s=1.0))
    wait_round(stack, pid, 2)
    stack.broker.stop()
    stopped = time.time()
    time.sleep(10)  # deliberately: the aggregator finishes while the broker is down
    stack.broker.start()
    completes_with_one_model(stack, pid, name, timeout=120, scenario=scenario)
    import datetime as dt

    completed = [e["event"] for e in stack.events(pid) if e["event"]["event"] == "completed"
                 and e["event"]["component"] == "aggregator"]
    assert len(completed) == 1, completed
    at = dt.datetime.fromisoformat(completed[0]["timestamp"].replace("Z", "+00:00")).timestamp()
    scenario.observe("the aggregator's 'completed' was emitted "
                     f"{'during' if at >= stopped else 'before'} the outage "
                     f"({at - stopped:+.1f} s after the broker stopped) and arrived once")
    observe_reconnections(stack, pid, scenario)


def test_mlflow_restart_mid_training(stack: Stack, slow_repo: str, scenario: Scenario,
                                     cleanup_projects: list[str]) -> None:
    rounds = 4
    scenario.declare("F5", "the MLflow server restarted mid-training",
                     "completes within 240 s with every round's metrics and one model version")
    name = "f5"
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(name=name, rounds=rounds,
                                                                    sleep_s=2.0))
    wait_round(stack, pid)
    started = time.monotonic()
    stack.mlflow.restart(timeout=120)
    project = completes_with_one_model(stack, pid, name, timeout=240, scenario=scenario)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url)
    steps = sorted(m.step for m in client.get_metric_history(project["model"]["mlflow_run_id"],
                                                             "accuracy"))
    assert steps == list(range(1, rounds + 1)), f"MLflow accuracy steps: {steps}"
    scenario.observe(f"MLflow steps {steps}; completed {time.monotonic() - started:.0f} s "
                     "after the restart began")


@pytest.mark.parametrize("phase", ["building", "deploying", "training"])
def test_manager_sigkill_then_restart(stack: Stack, slow_repo: str, scenario: Scenario,
                                      cleanup_projects: list[str], phase: str,
                                      tmp_path: Path) -> None:
    scenario.declare(f"F6-{phase}", f"the manager killed (SIGKILL) while {phase}, restarted",
                     "after the restart the project reaches a final phase within 180 s "
                     "(completed, or failed naming the lost processes); no orphan process")
    name = f"f6{phase[:2]}"
    repo = slow_repo
    if phase == "building":
        # a dependency set of its own: a cold environment build (seconds), not a cache hit
        # (well under a second with warm starts), so the manager dies while it builds
        repo = own_dependencies_repo(slow_repo, tmp_path / "own-deps")
    pid = submit(stack, repo, cleanup_projects, stack.spec(name=name, rounds=3, sleep_s=1.0))
    if phase == "training":
        wait_round(stack, pid)
    else:
        stack.wait(pid, lambda p: p["phase"] == phase, timeout=START_S, what=phase)
    stack.manager.kill()
    stack.manager.start(timeout=120)
    restarted = time.monotonic()
    project = stack.wait_final(pid, timeout=180)
    took = time.monotonic() - restarted
    check_event_log(stack, pid)
    if project["phase"] == "completed":
        assert len(registered_versions(stack, f"{name}-model", pid)) == 1
    else:
        assert project["last_error"], project
    wait_until(lambda: not stack.leftovers(pid), timeout=60,
               what=f"nothing of {pid} left after it ended")
    scenario.observe(f"{project['phase']} {took:.0f} s after the restart"
                     + (f": {project['last_error'][:200]}" if project["last_error"] else ""))


def test_database_restart(stack: Stack, slow_repo: str, scenario: Scenario,
                          cleanup_projects: list[str]) -> None:
    scenario.declare("F7", "the database server (nx-27017) restarted mid-training (down 3 s)",
                     "the API answers 503 while it is down and 200 again within 30 s; "
                     "the project completes within 240 s with no event lost")
    name = "f7"
    rounds = 4
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(name=name, rounds=rounds,
                                                                    sleep_s=2.0))
    wait_round(stack, pid)
    stack.db.stop()
    import requests

    down = requests.get(f"{stack.base}/projects/{pid}", headers={
        "Authorization": "Bearer tok-alice"}, timeout=30)
    time.sleep(3)  # deliberately: events published during the outage must not be lost
    stack.db.start()
    back = time.monotonic()
    wait_until(lambda: stack.project(pid), timeout=30, what="the API answering again")
    answered = time.monotonic() - back
    completes_with_one_model(stack, pid, name, timeout=240, scenario=scenario)
    assert down.status_code == 503, (down.status_code, down.text)
    scenario.observe(f"API {down.status_code} while down, answered again {answered:.1f} s after "
                     "the restart")


def test_learner_gone_is_recreated(stack: Stack, slow_repo: str, scenario: Scenario,
                                   cleanup_projects: list[str]) -> None:
    scenario.declare("F8", "drift: a learner removed behind FLOps' back mid-training (a "
                     "process killed from outside / a container removed; min_available 3: "
                     "the next round waits for it); drift grace 2 s",
                     "the worker starts the same instance again; completes within 300 s with "
                     "one model version")
    name = "f8"
    pid = submit(stack, slow_repo, cleanup_projects, stack.spec(
        name=name, rounds=5, sleep_s=2.0, min_fit_learners=2, min_evaluate_learners=2,
        min_available_learners=3))
    wait_round(stack, pid)
    # Fails naming what it waited for if the learners are gone. In three CI-order runs the
    # Docker stack's aggregator reported round 1 only after training had ended, so none were
    # left: its bridge had changed MAC and cut it off from the broker (see
    # flops_manager/adapters/bridge_neighbours.py).
    learners: dict[str, str] = wait_until(lambda: stack.instances(pid, f"{pid}-learners"),
                                          timeout=60, what="the project's running learners listed")
    instance, victim = sorted(learners.items())[-1]
    stack.remove(victim)
    removed = time.monotonic()
    wait_until(lambda: stack.instances(pid, instance).get(instance, victim) != victim,
               timeout=60, what=f"{instance} started again")
    scenario.observe(f"{instance} started again {time.monotonic() - removed:.1f} s after "
                     "it was removed")
    completes_with_one_model(stack, pid, name, timeout=300, scenario=scenario)
