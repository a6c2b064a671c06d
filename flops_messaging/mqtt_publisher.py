"""Publisher on paho-mqtt 2.x: QoS 1, waits for the broker's acknowledgement, last will."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from flops_contracts.events import (
    Component,
    Event,
    EventType,
    connection_data,
    new_incarnation,
)
from flops_contracts.topics import event_topic
from flops_messaging.publisher import EventPublisher

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MqttSettings:
    """Where and how to reach the broker. Credentials come from configuration, never argv."""

    host: str
    port: int = 1883
    use_tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    ack_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    flush_timeout_s: float = 60.0
    """How long :meth:`MqttPublisher.close` waits for events the broker has not acknowledged
    yet (e.g. published while it restarted), so a component's last events are not lost; it
    does not wait if the broker was never reachable."""
    keepalive_s: int = 30
    reconnect_max_delay_s: int = 2
    """The longest wait between reconnection attempts: after a broker restart, a component
    says ``online`` again within this delay, inside the manager's grace for last wills
    (``FLOPS_WILL_GRACE_S``)."""

WILL_REASON = "connection to the broker dropped without a goodbye"


class MqttPublisher(EventPublisher):
    """Publishes events of one component instance to its event topic.

    The connection is opened lazily on the first publish (no side effects in the constructor),
    reconnects automatically with backoff, and registers a last-will ``lost`` event so the
    manager learns when this component dies without saying goodbye. Every event it publishes,
    the last will included, carries this publisher's :attr:`incarnation`. Each connection is
    numbered (1, 2, ...): its will carries its number, and on every (re)connection the
    publisher says ``online`` with the new number, so the manager can tell the will of a
    dropped connection whose process lives on (a broker restart) from a death.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        project_id: str,
        component: Component,
        instance: str,
    ) -> None:
        self._settings = settings
        self._project_id = project_id
        self._component = component
        self._instance = instance
        self._topic = event_topic(project_id, component, instance)
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._unacknowledged: list[mqtt.MQTTMessageInfo] = []
        self._ever_connected = False
        self._incarnation = new_incarnation()
        self._connection = 1
        """The number of the current (or next) connection: the one the registered will is of."""

    @property
    def topic(self) -> str:
        """The topic this publisher writes to."""
        return self._topic

    @property
    def incarnation(self) -> str:
        """The id stamped on every event of this publisher and on its last will."""
        return self._incarnation

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT broker refused connection: %s", reason_code)
            return
        online = self._event(EventType.ONLINE, connection_data(self._connection))
        client.publish(self._topic, online.to_json(), qos=1)  # before anything published now
        self._ever_connected = True
        self._connected.set()

    def _event(self, kind: EventType, data: dict[str, Any]) -> Event:
        """An event of this publisher's component and incarnation."""
        return Event(project_id=self._project_id, component=self._component,
                     instance=self._instance, event=kind, data=data,
                     incarnation=self._incarnation)

    def _register_will(self, client: mqtt.Client) -> None:
        """Register the last will of the connection numbered :attr:`_connection`."""
        will = self._event(EventType.LOST, connection_data(self._connection, reason=WILL_REASON))
        client.will_set(self._topic, will.to_json(), qos=1, retain=False)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connected.clear()
        self._connection += 1  # paho's next connection registers the will of its number
        self._register_will(client)
        if reason_code != 0:
            logger.warning("MQTT connection lost (%s); reconnecting", reason_code)

    def _ensure_client(self) -> mqtt.Client:
        with self._lock:
            if self._client is not None:
                return self._client
            s = self._settings
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"{self._component}-{self._instance}-{self._project_id}"[:128],
                protocol=mqtt.MQTTv311,
            )
            if s.username:
                client.username_pw_set(s.username, s.password)
            if s.use_tls:
                client.tls_set(ca_certs=s.ca_file, cert_reqs=ssl.CERT_REQUIRED)
            self._register_will(client)
            client.reconnect_delay_set(min_delay=1, max_delay=max(1, s.reconnect_max_delay_s))
            client.max_queued_messages_set(10_000)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
            client.loop_start()
            self._client = client
            return client

    def publish(self, event: Event) -> bool:
        """Publish with QoS 1; return whether the broker acknowledged within the timeout.

        An unacknowledged event stays queued in the client and is re-sent after reconnecting.
        """
        client = self._ensure_client()
        s = self._settings
        self._connected.wait(s.connect_timeout_s)
        event = event.with_incarnation(self._incarnation)
        info = client.publish(self._topic, event.to_json(), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            logger.error("MQTT queue full; event %s dropped", event.event_id)
            return False
        deadline = time.monotonic() + s.ack_timeout_s
        while time.monotonic() < deadline:
            if _acknowledged(info):
                return True
            time.sleep(0.01)
        with self._lock:
            self._unacknowledged.append(info)
        logger.warning(
            "MQTT broker %s:%s did not acknowledge event %s within %.1fs; it stays queued",
            s.host,
            s.port,
            event.event_id,
            s.ack_timeout_s,
        )
        return False

    def _flush(self) -> None:
        """Wait up to ``flush_timeout_s`` until the broker acknowledged every queued event."""
        deadline = time.monotonic() + self._settings.flush_timeout_s
        while True:
            with self._lock:
                self._unacknowledged = [
                    i for i in self._unacknowledged
                    if not _acknowledged(i)
                ]
                waiting = len(self._unacknowledged)
            if not waiting or not self._ever_connected:
                return
            if time.monotonic() >= deadline:
                logger.error("MQTT broker %s:%s did not acknowledge %d event(s) within %.0fs; "
                             "they are lost", self._settings.host, self._settings.port, waiting,
                             self._settings.flush_timeout_s)
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Deliver queued events, then disconnect cleanly and stop the network loop.

        Waits up to ``flush_timeout_s`` for events the broker has not acknowledged; no last
        will is sent.
        """
        with self._lock:
            client = self._client
        if client is None:
            return
        self._flush()
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        try:
            client.disconnect()
        finally:
            client.loop_stop()


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged the QoS 1 message of ``info``.

    Not paho's ``is_published()``/``wait_for_publish()``: both raise ``RuntimeError`` while the
    client is disconnected (rc ``MQTT_ERR_NO_CONN``), although paho keeps the message queued and
    sends it as soon as the client reconnects (tests/messaging/test_publishers.py shows both).
    The flag they read is the one paho sets on the broker's PUBACK.
    """
    return bool(info._published)
