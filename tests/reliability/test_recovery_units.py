"""Units behind scenario F6: the local backend stops a dead manager's processes and the
planner fails or redoes the projects whose processes were lost."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flops_contracts.events import Component, Event, EventType
from flops_manager.adapters.local_orchestrator import LocalOrchestrator
from flops_manager.lifecycle import planner
from flops_manager.lifecycle.actions import NEEDS_TRACKING, ActionKind
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.ports.orchestrator import ServiceSpec
from tests.reliability.harness import alive, wait_until


def project(phase: Phase) -> Project:
    return Project(id="p0123456789abcdef", owner="alice", spec={}, repository={"url": "x"},
                   created_at=1.0, updated_at=1.0, phase=phase, phase_since=1.0)


@pytest.mark.parametrize("phase", [Phase.DEPLOYING, Phase.TRAINING])
def test_lost_training_processes_fail_the_project_with_a_reason(phase: Phase) -> None:
    decided = planner.plan_lost_services(project(phase), now=100.0).project
    assert decided.phase is Phase.FAILED
    assert decided.last_error and "manager restarted" in decided.last_error
    assert phase.value in decided.last_error


@pytest.mark.parametrize(("phase", "kind"), [
    (Phase.BUILDING, ActionKind.BUILD_IMAGES),
    (Phase.POST_TRAINING, ActionKind.BUILD_MODEL_IMAGE),
    (Phase.SERVING, ActionKind.DEPLOY_INFERENCE),
])
def test_repeatable_steps_are_redone_and_old_wills_ignored(phase: Phase,
                                                           kind: ActionKind) -> None:
    decided = planner.plan_lost_services(project(phase), now=time.time()).project
    assert decided.phase is phase
    # the shared tracking server died with the manager too: it is recreated first
    tracking = [ActionKind.DEPLOY_TRACKING.value] if kind in NEEDS_TRACKING else []
    assert [p.action["kind"] for p in decided.pending] == [*tracking, kind.value]
    if phase is Phase.BUILDING:  # the killed builder's last will (written before) is stale
        will = Event(project_id=decided.id, component=Component.BUILDER,
                     instance=f"{decided.id}-builder-0", event=EventType.LOST,
                     timestamp="2000-01-01T00:00:00Z", data={"reason": "dropped"})
        assert planner.plan_event(decided, will, now=time.time()).project.phase is phase


@pytest.mark.parametrize("phase", [Phase.SUBMITTED, Phase.COMPLETED, Phase.FAILED])
def test_submitted_and_final_projects_unchanged(phase: Phase) -> None:
    before = project(phase)
    assert planner.plan_lost_services(before, now=5.0).project == before


def test_local_backend_stops_processes_of_a_dead_manager(tmp_path: Path) -> None:
    spec = ServiceSpec(name="p0123456789abcdef-aggregator", role="aggregator", image="x",
                       command=(sys.executable, "-c", "import time; time.sleep(300)"))
    first = LocalOrchestrator(tmp_path, grace_s=1.0)
    first.create_service(spec)
    [record_file] = (tmp_path / "pids").glob("*.json")
    record = json.loads(record_file.read_text())
    child = record["pid"]
    # a second orchestrator while the first one's manager (this process) lives: nothing stopped
    assert LocalOrchestrator(tmp_path).reap_orphans() == [] and alive(child)
    # the manager died: its record names a process that no longer runs
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    record.update(manager=int(dead.stdout), manager_start="0")
    record_file.write_text(json.dumps(record))
    assert LocalOrchestrator(tmp_path).reap_orphans() == ["p0123456789abcdef-aggregator-0"]
    wait_until(lambda: not alive(child), timeout=10, what="the orphan to be killed")
    assert not list((tmp_path / "pids").glob("*.json"))
    first.close()


def test_publisher_close_delivers_events_queued_while_the_broker_is_down(
        tmp_path: Path) -> None:
    """Behind F4b: a component that ends during a broker outage still delivers its events."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from flops_messaging.mqtt_publisher import MqttPublisher, MqttSettings
    from tests.fixtures.servers import MosquittoServer

    seen_ids: list[str] = []
    broker = MosquittoServer(tmp_path / "broker").start()
    received: queue.Queue[bytes] = queue.Queue()
    subscribed = threading.Event()
    # a persistent session: the broker keeps what arrives for it across its restart
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sub-f4b", clean_session=False,
                      protocol=mqtt.MQTTv311)
    sub.on_message = lambda c, u, m: received.put(bytes(m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, u, f, r, p: c.subscribe("flops/v1/projects/#", qos=1)
    sub.reconnect_delay_set(min_delay=1, max_delay=2)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    publisher = MqttPublisher(MqttSettings(host="127.0.0.1", port=broker.port,
                                           ack_timeout_s=0.3, flush_timeout_s=30),
                              project_id="p2", component=Component.AGGREGATOR, instance="c0")
    try:
        assert subscribed.wait(10), "subscriber not subscribed"
        first = Event("p2", Component.AGGREGATOR, "c0", EventType.STARTED)
        assert publisher.publish(first)
        assert reported(received).event_id == first.event_id
        broker.stop()
        last = Event("p2", Component.AGGREGATOR, "c0", EventType.COMPLETED)
        assert publisher.publish(last) is False  # queued, not acknowledged
        closing = threading.Thread(target=publisher.close)
        closing.start()  # waits for the broker instead of dropping the event
        broker.start()
        ids = wait_until(  # QoS 1 may redeliver the first event too
            lambda: last.event_id in (seen := _drain(received, seen_ids)) and seen,
            timeout=40, what="the event queued during the outage")
        closing.join(40)
        assert not closing.is_alive(), "close() did not return after delivering"
        assert ids.count(last.event_id) >= 1
    finally:
        sub.loop_stop()
        sub.disconnect()
        broker.stop()


def _drain(received: queue.Queue[bytes], seen: list[str]) -> list[str]:
    while not received.empty():
        seen.append(Event.from_json(received.get_nowait()).event_id)
    return seen


def reported(received: queue.Queue[bytes]) -> Event:
    """The next event received that is not an ``online`` (one per publisher connection)."""
    while True:
        event = Event.from_json(received.get(timeout=10))
        if event.event is not EventType.ONLINE:
            return event
