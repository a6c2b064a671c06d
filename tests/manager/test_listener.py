from __future__ import annotations

import json
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from flops_contracts.events import Component, EventType
from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.adapters.mqtt_listener import MqttEventSource
from flops_manager.lifecycle.state import Phase
from flops_manager.services.ingest import EventIngest
from flops_messaging.emitter import EventEmitter
from flops_messaging.factory import create_publisher
from tests.fixtures.servers import MosquittoServer, wait_for
from tests.manager.test_store_contract import project


def raw_publish(url: str, topic: str, payload: bytes) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(host, int(port))
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_invalid_events_are_rejected_and_listener_survives(
    mosquitto: MosquittoServer, mongo_store: MongoProjectStore
) -> None:
    p = mongo_store.create_project(project())
    mongo_store.save_project(p.replace(phase=Phase.BUILDING), expected_version=1)
    source = MqttEventSource(mosquitto.url, client_id="t-" + uuid.uuid4().hex[:8])
    source.start(EventIngest(mongo_store).handle)
    try:
        assert source.wait_connected(10)
        topic = f"flops/v1/projects/{p.id}/builder/b0/events"
        raw_publish(mosquitto.url, topic, b"{not json")
        raw_publish(mosquitto.url, topic, json.dumps({"version": 1, "hello": 1}).encode())
        other = "punknown000000000"
        emitter = EventEmitter(create_publisher(mosquitto.url, project_id=other,
                                                component=Component.BUILDER, instance="b0"),
                               project_id=other, component=Component.BUILDER, instance="b0")
        emitter.emit(EventType.STARTED)
        emitter.close()
        wrong = EventEmitter(create_publisher(mosquitto.url, project_id=p.id,
                                              component=Component.BUILDER, instance="b0"),
                             project_id=p.id, component=Component.BUILDER, instance="b0")
        raw_publish(mosquitto.url, f"flops/v1/projects/{p.id}/aggregator/b0/events",
                    b'{"version":1}')
        wait_for(lambda: len(mongo_store.list_rejected_events()) >= 4, what="4 rejections")
        reasons = " | ".join(r.reason for r in mongo_store.list_rejected_events())
        assert "not valid JSON" in reasons and "unknown project" in reasons
        wrong.emit(EventType.COMPLETED)
        wrong.close()
        wait_for(lambda: mongo_store.get_project(p.id).phase is Phase.DEPLOYING,
                 what="valid event processed")

        def kinds() -> list[str]:  # each connection of the emitter also says online
            return [e.event["event"] for e in mongo_store.list_events(p.id)
                    if e.event["event"] != "online"]

        wait_for(lambda: len(kinds()) >= 2, what="the phase change event")
        assert kinds() == ["completed", "phase_changed"]  # the valid event, then the manager's
        source.ping()
    finally:
        source.stop()
