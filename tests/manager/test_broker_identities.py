"""Per-project broker identities, enforced by the broker itself.

Three times: a real Mosquitto (dynamic security plugin) with the generated configuration the
compose suite's tests use, Mosquitto exactly as the embedded stack (``flops up``) configures
it, and the embedded stack's fallback when Mosquitto is missing: amqtt with FLOps' policy
plugins, again exactly as ``flops up`` configures it. The manager's side of each is built from
the settings the stack gives the manager (``registry.build_broker_accounts``).

The manager's Enrollment creates one login per enrolled instance through the plugin; the test
then connects with those logins and checks what the broker lets through, as seen by a
subscriber with the manager's login. A forged event that reaches the manager on its sender's
own topic is stored as rejected and does not move the project.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from flops_contracts.events import Component, Event, EventType
from flops_contracts.topics import event_topic
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.cli.broker import broker_command, manager_broker_env
from flops_manager.identity.enrollment import Enrollment
from flops_manager.lifecycle.state import Phase
from flops_manager.ports.errors import ForbiddenError, UnauthorizedError
from flops_manager.ports.orchestrator import ServiceSpec
from flops_manager.registry import build_broker_accounts
from flops_manager.services.ingest import EventIngest, Outcome
from flops_manager.services.mutate import mutate_project
from flops_manager.services.projects import ProjectService
from tests.fixtures.servers import MosquittoServer, port_open, wait_for
from tests.fixtures.tools import require_tools
from tests.manager.conftest import make_settings

ADMIN = ("flops-manager", "manager-" + uuid.uuid4().hex)


class EmbeddedBroker(MosquittoServer):
    """The broker exactly as ``flops up`` configures it (cli/broker.py), with its login."""

    def __init__(self, directory: Path, kind: str) -> None:
        super().__init__(directory)
        self.kind = kind
        self.manager_env: dict[str, str] = {}

    def start(self) -> EmbeddedBroker:
        kind, argv = broker_command(self.directory, self.port, {"FLOPS_BROKER": self.kind})
        self.manager_env = manager_broker_env(self.directory)
        assert kind == self.kind and self.manager_env, f"{self.kind} has no logins"
        self.dynsec = (self.manager_env["FLOPS_MQTT_USERNAME"],
                       self.manager_env["FLOPS_MQTT_PASSWORD"])
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), timeout=30, what=f"embedded {self.kind}")
        return self


@pytest.fixture(scope="module", params=["generated", "embedded", "embedded-amqtt"])
def broker(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """Mosquitto with the generated configuration of tests/compose, that of ``flops up``, and
    ``flops up``'s amqtt fallback (installed into its private venv, as on a machine without
    Mosquitto)."""
    directory = tmp_path_factory.mktemp(request.param)
    server: MosquittoServer
    if request.param == "embedded-amqtt":
        server = EmbeddedBroker(directory, "amqtt")
    else:
        require_tools(["mosquitto"], "apt-get install mosquitto")
        server = (MosquittoServer(directory, dynsec=ADMIN) if request.param == "generated"
                  else EmbeddedBroker(directory, "mosquitto"))
    server.start()
    yield server
    server.stop()


def admin(broker: MosquittoServer) -> tuple[str, str]:
    assert broker.dynsec is not None
    return broker.dynsec


def is_amqtt(broker: MosquittoServer) -> bool:
    """amqtt speaks MQTT 3.1.1 only: a refused publish is dropped without a reason code."""
    return isinstance(broker, EmbeddedBroker) and broker.kind == "amqtt"


class Listener:
    """The manager's view: everything under flops/ with the administrator login."""

    def __init__(self, broker: MosquittoServer) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listener-" +
                                  uuid.uuid4().hex[:6])
        self.client.username_pw_set(*admin(broker))
        self.client.on_connect = lambda c, *a: c.subscribe("flops/#", qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.ready.wait(10), "the manager's login could not subscribe"

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Component_:
    """An MQTT client with working credentials; publish() returns the broker's verdict.

    MQTT v5 on Mosquitto (a refused publish is answered with reason code 135), 3.1.1 on amqtt
    (the PUBACK carries no verdict: 0 either way; what got through shows at the listener).
    """

    def __init__(self, broker: MosquittoServer, env: dict[str, str]) -> None:
        protocol = mqtt.MQTTv311 if is_amqtt(broker) else mqtt.MQTTv5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol,
                                  client_id="c-" + uuid.uuid4().hex[:8])
        self.client.username_pw_set(env["FLOPS_MQTT_USERNAME"], env["FLOPS_MQTT_PASSWORD"])
        self.refused: str | None = None
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        wait_for(self.client.is_connected, timeout=10, what="component connected")

    def publish(self, topic: str, payload: str) -> int:
        """Publish with QoS 1; return the PUBACK reason code (< 128 accepted, 135 refused;
        always 0 with MQTT 3.1.1)."""
        done = threading.Event()
        codes: list[int] = []

        def on_publish(c: Any, u: Any, mid: int, reason: Any, props: Any) -> None:
            codes.append(int(reason.value))
            done.set()

        self.client.on_publish = on_publish
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)
        assert done.wait(10)
        return codes[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class World:
    def __init__(self, broker: MosquittoServer) -> None:
        self.store = MemoryProjectStore()
        user, password = admin(broker)
        manager = getattr(broker, "manager_env", None) or {
            "FLOPS_BROKER_ACCOUNTS": "mosquitto-dynsec"}
        settings = make_settings(mqtt_url=broker.url, mqtt_username=user,
                                 mqtt_password=password,
                                 broker_accounts=manager["FLOPS_BROKER_ACCOUNTS"],
                                 broker_policy_file=manager.get("FLOPS_BROKER_POLICY_FILE"))
        self.accounts = build_broker_accounts(settings)
        assert self.accounts.managed
        self.enrollment = Enrollment(self.store, settings, broker=self.accounts)
        self.projects = ProjectService(self.store, allow_local_repos=True)

    def project(self) -> str:
        return self.projects.create(owner="alice", spec={"name": "b"},
                                    repository={"url": "https://h/u/r"}).id

    def credentials(self, pid: str, role: str) -> dict[str, str]:
        spec = self.enrollment.seal(ServiceSpec(name=f"{pid}-{role}", role=role, image="i",
                                                project_id=pid))
        return self.enrollment.exchange(spec.env["FLOPS_ENROLL_TOKEN"], project_id=pid,
                                        role=role, instance=f"{pid}-{role}-0")


def event(pid: str, component: Component, event_type: EventType, **data: Any) -> str:
    return Event(pid, component, f"{pid}-x-0", event_type, data=data).to_json()


def test_a_learner_login_publishes_only_its_own_project_and_role(broker: MosquittoServer) -> None:
    world = World(broker)
    a, b = world.project(), world.project()
    listener = Listener(broker)
    learner = Component_(broker, world.credentials(a, "learners"))
    try:
        own = event_topic(a, Component.LEARNER, f"{a}-x-0")
        forbidden = {
            "other project's learner topic": event_topic(b, Component.LEARNER, f"{b}-x-0"),
            "own project's builder topic": event_topic(a, Component.BUILDER, f"{a}-x-0"),
            "own project's aggregator topic": event_topic(a, Component.AGGREGATOR, f"{a}-x-0"),
            "outside FLOps' topics": "other/topic",
        }
        for what, topic in forbidden.items():
            code = learner.publish(topic, event(a, Component.BUILDER, EventType.COMPLETED,
                                                images={"learner": "evil/image"}))
            assert code == (0 if is_amqtt(broker) else 135), (
                f"{what}: the broker accepted it (reason code {code})")
        assert learner.publish(own, event(a, Component.LEARNER, EventType.STARTED)) == 0
        wait_for(lambda: own in listener.topics(), timeout=10, what="the allowed event")
        time.sleep(0.2)  # anything the broker let through would have arrived by now
        assert listener.topics() == [own], listener.topics()
    finally:
        learner.close()
        listener.close()


def test_a_forged_completed_with_images_is_rejected_and_does_not_move_the_project(
    broker: MosquittoServer,
) -> None:
    world = World(broker)
    pid = world.project()
    mutate_project(world.store, pid, lambda p: p.replace(phase=Phase.BUILDING), now=1.0)
    listener = Listener(broker)
    learner = Component_(broker, world.credentials(pid, "learners"))
    try:
        own = event_topic(pid, Component.LEARNER, f"{pid}-x-0")
        forged = event(pid, Component.LEARNER, EventType.COMPLETED,
                       images={"learner": "attacker/image", "aggregator": "attacker/image"})
        assert learner.publish(own, forged) == 0  # its own topic: the broker lets it through
        wait_for(lambda: listener.got, timeout=10, what="the forged event at the manager")
        ingest = EventIngest(world.store)
        result = ingest.handle(*listener.got[0])
        assert result.outcome is Outcome.REJECTED
        assert "learner may not send 'images'" in str(result.reason)
        project = world.store.get_project(pid)
        assert project.phase is Phase.BUILDING and project.build is None
        (rejected,) = world.store.list_rejected_events(project_id=pid)
        assert "images" in rejected.reason
    finally:
        learner.close()
        listener.close()


def test_credentials_stop_working_when_the_project_ends(broker: MosquittoServer) -> None:
    world = World(broker)
    pid = world.project()
    creds = world.credentials(pid, "aggregator")
    component = Component_(broker, creds)
    topic = event_topic(pid, Component.AGGREGATOR, f"{pid}-x-0")
    # 16: accepted, no subscriber
    assert component.publish(topic, event(pid, Component.AGGREGATOR, EventType.STARTED)) in (0, 16)
    spare = world.enrollment.seal(ServiceSpec(name=f"{pid}-b", role="builder", image="i",
                                              project_id=pid))
    mutate_project(world.store, pid, lambda p: p.replace(phase=Phase.COMPLETED), now=1.0)
    listener = Listener(broker)
    assert world.enrollment.revoke(pid) == 1
    if is_amqtt(broker):  # amqtt cannot drop the session: what it sends now is discarded
        component.publish(topic, event(pid, Component.AGGREGATOR, EventType.COMPLETED))
        time.sleep(0.5)
        assert listener.topics() == [], "a revoked login still published"
    else:
        wait_for(lambda: not component.client.is_connected(), timeout=10,
                 what="the broker disconnecting the revoked login")
    listener.close()
    component.close()
    again = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="again-" + uuid.uuid4().hex[:6])
    again.username_pw_set(creds["FLOPS_MQTT_USERNAME"], creds["FLOPS_MQTT_PASSWORD"])
    with pytest.raises(Exception):  # noqa: B017 - paho raises on a refused CONNACK
        again.connect("127.0.0.1", broker.port)
        again.loop_start()
        wait_for(lambda: False, timeout=2, what="never")
    assert not again.is_connected()
    again.loop_stop()
    with pytest.raises((UnauthorizedError, ForbiddenError)):
        world.enrollment.exchange(spare.env["FLOPS_ENROLL_TOKEN"], project_id=pid,
                                  role="builder", instance="late")
    assert json.dumps(creds)  # the credentials themselves were plain strings
