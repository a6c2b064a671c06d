"""MQTT EventSource: one long-lived paho-mqtt 2.x client with a persistent session.

The client uses a fixed client id and ``clean_session=False`` (MQTT 3.1.1) and subscribes with
QoS 1 in ``on_connect``, so the broker keeps events published while the manager is down. Paho's
network thread only queues messages; a worker thread hands them to the handler and acknowledges
them afterwards (manual acks), so a crash before handling leads to redelivery, not loss.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from flops_contracts.backoff import backoff_delay
from flops_contracts.errors import ConfigError
from flops_contracts.topics import SUBSCRIPTION
from flops_manager.ports.errors import BackendUnavailableError
from flops_manager.ports.event_source import EventSource, MessageHandler

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0


@dataclasses.dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``mqtt://host:port``.

    Raises
    ------
    ConfigError
        For another scheme or a missing host.
    """
    parsed = urlparse(url)
    if parsed.scheme != "mqtt" or not parsed.hostname:
        raise ConfigError(f"FLOPS_MQTT_URL {url!r}: use mqtt://host:port")
    return parsed.hostname, parsed.port or 1883


class MqttEventSource(EventSource):
    """Delivers every message on :data:`flops_contracts.topics.SUBSCRIPTION` to a handler."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str = "flops-manager",
        keepalive: int = 30,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port = parse_mqtt_url(url)
        self.client_id = client_id
        self.keepalive = keepalive
        self._queue: queue.Queue[_Message | None] = queue.Queue()
        self._connected = threading.Event()
        self._heard_since: float | None = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._handler: MessageHandler | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        client.subscribe(SUBSCRIPTION, qos=1)  # connected counts from the SUBACK on
        log.info("MQTT connected to %s:%s (session present: %s)", self.host, self.port,
                 getattr(flags, "session_present", None))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        if any(getattr(code, "is_failure", False) for code in reason_codes or []):
            log.error("MQTT subscription to %s refused: %s", SUBSCRIPTION, reason_codes)
            return
        self._heard_since = time.time()
        self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connected.clear()
        self._heard_since = None
        log.warning("MQTT disconnected (%s); paho reconnects with backoff", reason_code)

    def heard_since(self) -> float | None:
        """When the subscription was last (re)established (epoch seconds).

        Since then the manager hears what components publish; ``None``: not connected now.
        """
        return self._heard_since

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(_Message(message.topic, bytes(message.payload), message.mid, message.qos))

    def _handle(self, item: _Message) -> bool:
        """Hand ``item`` to the handler; return ``False`` if it must be retried.

        A message is retried (not acknowledged) while the database is unavailable, so an
        outage of the store loses no event; any other error is logged and the message dropped.
        """
        try:
            if self._handler is not None:
                self._handler(item.topic, item.payload)
        except BackendUnavailableError as exc:
            log.warning("cannot store MQTT message on %s yet (%s); retrying", item.topic,
                        exc.message)
            return False
        except Exception:
            log.exception("handling MQTT message on %s failed", item.topic)
        return True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            attempt = 0
            while not self._handle(item):  # in order: later messages wait for this one
                delay = backoff_delay(attempt, base_s=RETRY_MIN_S, cap_s=RETRY_MAX_S)
                if self._stopping.wait(delay):
                    return  # not acknowledged: the broker redelivers it to the next manager
                attempt += 1
            if item.qos > 0:
                self._client.ack(item.mid, item.qos)

    def start(self, handler: MessageHandler) -> None:  # noqa: D102
        self._handler = handler
        self._worker = threading.Thread(target=self._work, name="flops-mqtt-worker", daemon=True)
        self._worker.start()
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until subscribed; return whether that happened within ``timeout``."""
        return self._connected.wait(timeout)

    def stop(self) -> None:  # noqa: D102
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(10)

    def ping(self) -> None:  # noqa: D102
        if not self._connected.is_set():
            raise BackendUnavailableError(f"not connected to MQTT broker {self.host}:{self.port}")
