import json
import os
import queue
import subprocess
import sys
import textwrap
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from flops_contracts.errors import ConfigError
from flops_contracts.events import Component, Event, EventType, connection_of
from flops_contracts.topics import SUBSCRIPTION, parse_event_topic
from flops_messaging import EventEmitter, create_publisher
from flops_messaging.file_publisher import FilePublisher, read_events
from flops_messaging.log_publisher import LogPublisher
from flops_messaging.mqtt_publisher import MqttPublisher
from tests.fixtures.servers import free_port


def subscriber(port: int) -> tuple[mqtt.Client, "queue.Queue[tuple[str, bytes]]"]:
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    ready: queue.Queue[bool] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-sub")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(SUBSCRIPTION, qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: ready.put(True)
    client.on_message = lambda c, u, m: received.put((m.topic, bytes(m.payload)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.get(timeout=10)
    return client, received


def next_report(received: "queue.Queue[tuple[str, bytes]]", onlines: list[Event],
                timeout: float = 10) -> tuple[str, bytes]:
    """The next message that is not an ``online`` (those are appended to ``onlines``)."""
    while True:
        topic, payload = received.get(timeout=timeout)
        event = Event.from_json(payload)
        if event.event is not EventType.ONLINE:
            return topic, payload
        onlines.append(event)


def test_mqtt_publish_is_acknowledged_and_delivered(broker):
    sub, received = subscriber(broker.port)
    try:
        publisher = create_publisher(broker.url, project_id="p1", component=Component.LEARNER,
                                     instance="learner-0")
        assert isinstance(publisher, MqttPublisher)
        emitter = EventEmitter(publisher, project_id="p1", component=Component.LEARNER,
                               instance="learner-0")
        sent = [emitter.emit(EventType.PROGRESS, round=i) for i in range(50)]
        emitter.close()
        onlines: list[Event] = []
        got = [next_report(received, onlines) for _ in sent]
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert [Event.from_json(p).event_id for _, p in got] == [e.event_id for e in sent]
    assert parse_event_topic(got[0][0]) == ("p1", Component.LEARNER, "learner-0")
    # every event of the connection carries its incarnation; another publisher has its own
    assert {Event.from_json(p).incarnation for _, p in got} == {publisher.incarnation}
    # the connection said online first, numbered 1
    assert [(connection_of(e), e.incarnation) for e in onlines] == [(1, publisher.incarnation)]
    other = create_publisher(broker.url, project_id="p1", component=Component.LEARNER,
                             instance="learner-0")
    assert isinstance(other, MqttPublisher)
    assert other.incarnation != publisher.incarnation


def test_publish_without_broker_returns_false_quickly(monkeypatch):
    from flops_messaging.mqtt_publisher import MqttPublisher, MqttSettings

    publisher = MqttPublisher(
        MqttSettings(host="127.0.0.1", port=free_port(), ack_timeout_s=0.5,
                     connect_timeout_s=0.5),
        project_id="p1", component=Component.LEARNER, instance="l0",
    )
    started = time.monotonic()
    ok = publisher.publish(Event("p1", Component.LEARNER, "l0", EventType.STARTED))
    publisher.close()
    assert ok is False
    assert time.monotonic() - started < 5


def test_last_will_marks_a_killed_component_lost(broker):
    sub, received = subscriber(broker.port)
    script = textwrap.dedent(f"""
        import os, time
        from flops_contracts.events import Component, EventType
        from flops_messaging import EventEmitter, create_publisher
        p = create_publisher("{broker.url}", project_id="p9", component=Component.LEARNER,
                             instance="doomed")
        EventEmitter(p, project_id="p9", component=Component.LEARNER,
                     instance="doomed").emit(EventType.STARTED)
        print("ready", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "FLOPS_MQTT_KEEPALIVE_S": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == b"ready"
        onlines: list[Event] = []
        first = Event.from_json(next_report(received, onlines)[1])
        assert first.event is EventType.STARTED
        proc.kill()
        proc.wait(10)
        will = Event.from_json(next_report(received, onlines, timeout=15)[1])
    finally:
        proc.kill()
        sub.loop_stop()
        sub.disconnect()
    assert will.event is EventType.LOST
    assert (will.project_id, will.instance) == ("p9", "doomed")
    assert will.incarnation is not None and will.incarnation == first.incarnation
    assert connection_of(will) == 1 and will.data["reason"]
    assert [(connection_of(e), e.incarnation) for e in onlines] == [(1, first.incarnation)]


def test_events_queued_while_broker_down_arrive_after_restart(broker, tmp_path):
    from flops_messaging.mqtt_publisher import MqttPublisher, MqttSettings

    publisher = MqttPublisher(
        MqttSettings(host="127.0.0.1", port=broker.port, ack_timeout_s=0.3),
        project_id="p2", component=Component.AGGREGATOR, instance="classic",
    )
    assert publisher.publish(Event("p2", Component.AGGREGATOR, "classic", EventType.STARTED))
    broker.stop()
    queued = Event("p2", Component.AGGREGATOR, "classic", EventType.PROGRESS, data={"n": 1})
    assert publisher.publish(queued) is False
    broker.start()
    sub, received = subscriber(broker.port)
    onlines: list[Event] = []
    try:
        _topic, payload = next_report(received, onlines, timeout=20)
        while not onlines:  # the reconnected publisher says online, numbered 2
            event = Event.from_json(received.get(timeout=10)[1])
            if event.event is EventType.ONLINE:
                onlines.append(event)
    finally:
        publisher.close()
        sub.loop_stop()
        sub.disconnect()
    assert Event.from_json(payload).event_id == queued.event_id
    assert [(connection_of(e), e.incarnation) for e in onlines] == [(2, publisher.incarnation)]


def test_file_and_log_publishers(tmp_path, caplog):
    path = tmp_path / "e" / "events.jsonl"
    publisher = create_publisher(f"file://{path}", project_id="p", component=Component.MANAGER,
                                 instance="m")
    assert isinstance(publisher, FilePublisher)
    event = Event("p", Component.MANAGER, "m", EventType.LOG, data={"msg": "hi"})
    assert publisher.publish(event)
    with path.open("a") as handle:
        handle.write("{torn line\n")
    assert [e.event_id for e in read_events(path)] == [event.event_id]
    log = create_publisher(None, project_id="p", component=Component.MANAGER, instance="m")
    assert isinstance(log, LogPublisher)
    with caplog.at_level("INFO", logger="flops.events"):
        assert log.publish(event)
    assert json.loads(caplog.records[-1].args[0])["event_id"] == event.event_id


@pytest.mark.parametrize(
    ("uri", "needle"),
    [("kafka://x", "unsupported"), ("mqtt://user:pw@host:1883", "credentials"),
     ("file://relative", "absolute"), ("mqtt://host?keepalive_s=0", "keepalive"),
     ("mqtt://host?keepalive_s=2.5", "keepalive"), ("mqtt://host?qos=2", "unknown")],
)
def test_bad_uris_are_rejected(uri, needle):
    with pytest.raises(ConfigError, match=needle):
        create_publisher(uri, project_id="p", component=Component.MANAGER, instance="m")


@pytest.mark.parametrize(("uri", "env", "expected"), [
    ("mqtt://host:1883", {}, 30),
    ("mqtt://host:1883", {"FLOPS_MQTT_KEEPALIVE_S": "7"}, 7),
    ("mqtt://host:1883?keepalive_s=2", {"FLOPS_MQTT_KEEPALIVE_S": "7"}, 2),
])
def test_keepalive_from_the_uri_or_the_environment(uri, env, expected):
    from flops_messaging.mqtt_publisher import MqttPublisher

    publisher = create_publisher(uri, project_id="p", component=Component.AGGREGATOR,
                                 instance="a", environ=env)
    assert isinstance(publisher, MqttPublisher)
    assert publisher._settings.keepalive_s == expected

