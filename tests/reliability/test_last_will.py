"""The last will fails a project whose aggregator died, on a backend that never polls.

A stack of its own: the manager does not read service status from its backend
(``FLOPS_SERVICE_STATUS_POLLING=false``) and hands components an events URI with a small MQTT
keepalive, so the only way it can learn of the aggregator's death is the aggregator's last will
(a ``lost`` event) that Mosquitto publishes, which counts once the aggregator showed no sign of
life (``online`` again, or a report) for the manager's will grace. Every process is real:
Mosquitto, nx-27017, MLflow, the manager on the local backend, the aggregator and the learners
it starts.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import Scenario
from tests.reliability.harness import (
    Stack,
    check_event_log,
    kill_project_processes,
    service_pids,
    spec,
    wait_until,
)
from tests.reliability.test_faults import submit, wait_round

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEEPALIVE_S = 4
GRACE_S = 2.0
"""The manager's will grace (``FLOPS_WILL_GRACE_S``): how long a component whose will arrived
may still say ``online`` again (a broker restart) before it counts as lost."""
BOUND_S = KEEPALIVE_S * 1.5 + GRACE_S
WILL_REASON = "connection to the broker dropped without a goodbye"


@pytest.fixture(scope="module")
def deaf_stack(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[Stack]:
    """A stack whose manager learns of dead components only through MQTT."""
    settings = {"FLOPS_SERVICE_STATUS_POLLING": "false",
                "FLOPS_EVENTS_URI": f"{{mqtt_url}}?keepalive_s={KEEPALIVE_S}",
                "FLOPS_WILL_GRACE_S": str(GRACE_S)}
    running = Stack(tmp_path_factory.mktemp("deaf-stack"), cache_dir, settings)
    try:
        yield running.start()
    finally:
        running.stop()


def aggregator_events(stack: Stack, pid: str) -> list[dict[str, Any]]:
    return [e["event"] for e in stack.events(pid) if e["event"]["component"] == "aggregator"]


def fails_through_the_last_will(stack: Stack, repo: str, scenario: Scenario, *, name: str,
                                stop: signal.Signals, bound_s: float) -> None:
    """Stop the aggregator with ``stop`` after round 2 and check how the project fails.

    It must fail within ``bound_s`` by the aggregator's ``lost`` event, and every process of
    the project must be gone afterwards.
    """
    created: list[str] = []
    pid = submit(stack, repo, created, spec(name=name, rounds=20, sleep_s=1.0))
    try:
        wait_round(stack, pid, 2)
        [aggregator] = service_pids(pid, f"{pid}-aggregator")
        stopped = time.monotonic()
        os.kill(aggregator, stop)
        project = stack.wait(pid, lambda p: p["phase"] == "failed", timeout=bound_s,
                             what=f"failed within {bound_s:g} s of the {stop.name}",
                             allow_terminal=True)
        took = time.monotonic() - stopped
        instance = f"{pid}-aggregator-0"
        assert project["last_error"] == f"aggregator '{instance}' lost: {WILL_REASON}", project
        events = aggregator_events(stack, pid)
        [lost] = [e for e in events if e["event"] == "lost"]
        rounds = [e for e in events if e["event"] == "round_completed"]
        assert len(rounds) >= 2 and lost["incarnation"]
        assert {e["incarnation"] for e in rounds} == {lost["incarnation"]}
        assert lost["timestamp"] < rounds[-1]["timestamp"], "stamped at connect, still honoured"
        items = check_event_log(stack, pid)
        [failed] = [i for i in items if i["event"]["event"] == "phase_changed"
                    and i["event"]["data"]["to"] == "failed"]
        [lost_item] = [i for i in items if i["event"]["event_id"] == lost["event_id"]]
        assert lost_item["seq"] < failed["seq"]
        assert failed["event"]["data"]["reason"] == project["last_error"]
        wait_until(lambda: not service_pids(pid, pid), timeout=30,
                   what=f"no process of {pid} left")
        scenario.observe(f"failed {took:.1f} s after the {stop.name} at round "
                         f"{project['progress']['round']}: {project['last_error']}; the lost "
                         f"event (seq {lost_item['seq']}) precedes the phase change "
                         f"(seq {failed['seq']}); no process left")
    finally:
        for created_pid in created:
            kill_project_processes(created_pid)


def test_aggregator_sigkill_after_round_2_fails_through_its_last_will(
    deaf_stack: Stack, slow_repo: str, scenario: Scenario
) -> None:
    scenario.declare(
        "F3b", "the aggregator killed (SIGKILL) after round 2; the manager never polls its "
        f"backend; MQTT keepalive {KEEPALIVE_S} s",
        f"failed within keepalive x 1.5 + will grace = {BOUND_S:g} s by the aggregator's "
        "'lost' event "
        "(its last will, same incarnation as its round events)")
    fails_through_the_last_will(deaf_stack, slow_repo, scenario, name="f3b",
                                stop=signal.SIGKILL, bound_s=BOUND_S)


def test_aggregator_frozen_after_round_2_fails_through_its_last_will(
    deaf_stack: Stack, slow_repo: str, scenario: Scenario
) -> None:
    # Mosquitto 2.0 publishes a frozen client's will later than 1.5 x keepalive: with
    # keepalive 4 s, 8.3-8.5 s after the SIGSTOP on an idle machine (measured with a bare
    # client), ~11 s on a loaded 2-core one (measured in this scenario); then the manager
    # ingests it and a reconcile pass (every 1 s) expires it after the grace.
    margin = 8.0
    scenario.declare(
        "F3c", "the aggregator frozen (SIGSTOP) after round 2, its connection left open; the "
        f"manager never polls its backend; MQTT keepalive {KEEPALIVE_S} s",
        f"failed within keepalive x 1.5 + will grace + {margin:g} s = {BOUND_S + margin:g} s "
        "by the "
        "aggregator's 'lost' event, which the broker publishes when the keepalive expires")
    fails_through_the_last_will(deaf_stack, slow_repo, scenario, name="f3c",
                                stop=signal.SIGSTOP, bound_s=BOUND_S + margin)
