"""BrokerAccounts through Mosquitto's dynamic security plugin (``$CONTROL/dynamic-security/v1``).

The manager's own broker login must be a dynamic-security administrator (what
``mosquitto_ctrl dynsec init FILE USER`` creates: it may publish and read the control topics
and read every topic). Each call opens a short MQTT connection, sends one batch of commands and
waits for the plugin's answer, so the broker has applied them before the caller goes on (a
component is handed a login only once the broker knows it). Deleting a client also
disconnects its sessions (the plugin kicks them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from flops_manager.adapters.mqtt_listener import parse_mqtt_url
from flops_manager.ports.broker_accounts import BrokerAccounts
from flops_manager.ports.errors import TemporaryError

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
EXISTS = ("already exists",)
MISSING = ("not found",)
PBKDF2_ITERATIONS = 101
"""What ``mosquitto_ctrl dynsec init`` uses (the plugin reads the count from the file)."""
ADMIN_ACLS = (
    ("publishClientSend", "$CONTROL/dynamic-security/#"),
    ("publishClientReceive", "$CONTROL/dynamic-security/#"),
    ("subscribePattern", "$CONTROL/dynamic-security/#"),
    ("publishClientReceive", "$SYS/#"),
    ("subscribePattern", "$SYS/#"),
    ("publishClientReceive", "flops/#"),
    ("subscribePattern", "flops/#"),
    ("unsubscribePattern", "#"),
)
"""The manager's rights: administer logins, read broker statistics and every FLOps event."""


def initial_config(admin: str, password: str, *, salt: bytes) -> dict[str, Any]:
    """The plugin's first configuration file: only the manager's administrator login (pure).

    Everything else is denied by default: no anonymous access, no publishing, no subscribing
    until the manager creates a login for an enrolled component. ``salt`` must be random
    (12 bytes, like ``mosquitto_ctrl``); the file holds only the salted PBKDF2 hash.
    """
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    return {
        "clients": [{
            "username": admin, "textName": "FLOps manager",
            "password": base64.b64encode(digest).decode(),
            "salt": base64.b64encode(salt).decode(), "iterations": PBKDF2_ITERATIONS,
            "roles": [{"rolename": "flops-manager"}],
        }],
        "roles": [{"rolename": "flops-manager", "acls": [
            {"acltype": kind, "topic": topic, "allow": True} for kind, topic in ADMIN_ACLS
        ]}],
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True,
                             "subscribe": False, "unsubscribe": True},
    }


def role_commands(role: str, topics: Sequence[str]) -> list[dict[str, Any]]:
    """Commands that create ``role`` allowed to publish on ``topics`` (pure)."""
    acls = [{"acltype": "publishClientSend", "topic": t, "priority": 0, "allow": True}
            for t in topics]
    return [{"command": "createRole", "rolename": role, "acls": acls}]


def client_commands(username: str, password: str, role: str) -> list[dict[str, Any]]:
    """Commands that create ``username`` with ``role`` (pure)."""
    return [{"command": "createClient", "username": username, "password": password,
             "roles": [{"rolename": role}]}]


def failures(answer: dict[str, Any], *, tolerated: tuple[str, ...]) -> list[str]:
    """The errors of a plugin answer, except the ``tolerated`` ones (pure)."""
    found = []
    for response in answer.get("responses", []):
        error = response.get("error")
        if error and not any(t in str(error).lower() for t in tolerated):
            found.append(f"{response.get('command')}: {error}")
    return found


class DynsecBrokerAccounts(BrokerAccounts):
    """Per-instance logins in Mosquitto's dynamic security plugin."""

    managed = True

    def __init__(self, url: str, *, username: str, password: str | None,
                 timeout_s: float = 10.0) -> None:
        self.host, self.port = parse_mqtt_url(url)
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self._lock = threading.Lock()

    def add(self, username: str, password: str, *, role: str, topics: Sequence[str]) -> None:
        """Create the role (if new) and the client (usernames are unique per enrollment)."""
        self._send(role_commands(role, topics) + client_commands(username, password, role),
                   tolerated=EXISTS)

    def remove(self, usernames: Sequence[str]) -> None:
        """Delete the clients (missing ones are fine)."""
        if usernames:
            self._send([{"command": "deleteClient", "username": u} for u in usernames],
                       tolerated=MISSING)

    def _send(self, commands: list[dict[str, Any]], *, tolerated: tuple[str, ...]) -> None:
        with self._lock:
            answer = self._exchange({"commands": commands})
        problems = failures(answer, tolerated=tolerated)
        if problems:
            raise TemporaryError("broker refused: " + "; ".join(problems))

    def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        """Publish ``request`` on the control topic and return the plugin's answer."""
        answered = threading.Event()
        subscribed = threading.Event()
        answer: dict[str, Any] = {}
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"flops-dynsec-{uuid.uuid4().hex[:12]}",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(self.username, self.password)

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       props: Any) -> None:
            if not reason.is_failure:
                c.subscribe(RESPONSE_TOPIC, qos=1)

        def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                         props: Any) -> None:
            subscribed.set()

        def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                answer.update(json.loads(message.payload))
            except ValueError:
                answer["responses"] = [{"command": "?", "error": "unreadable answer"}]
            answered.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise TemporaryError(f"broker unreachable for account changes: {exc}") from None
        client.loop_start()
        try:
            if not subscribed.wait(self.timeout_s):
                raise TemporaryError("broker did not accept the manager's dynamic-security "
                                     "login (is it a dynsec admin?)")
            client.publish(CONTROL_TOPIC, json.dumps(request), qos=1)
            if not answered.wait(self.timeout_s):
                raise TemporaryError("the broker's dynamic security plugin did not answer")
        finally:
            client.disconnect()
            client.loop_stop()
        return answer
