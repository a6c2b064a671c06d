"""The status-event contract: what every component reports, as versioned JSON.

An event says that ``component`` instance ``instance`` of project ``project_id`` reached ``event``
at ``timestamp``, with event-specific ``data``. ``event_id`` is unique per event so receivers can
drop duplicates (MQTT QoS 1 may deliver twice). ``incarnation`` (optional, added compatibly in
schema version 1) identifies the publishing connection: every event a component publishes over
one broker connection, its last-will ``lost`` included, carries the same id, so a receiver can
tell a restarted component's events from its predecessor's without comparing clocks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any

from flops_contracts.errors import EventFormatError
from flops_contracts.ids import is_identifier

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 256 * 1024


class Component(enum.StrEnum):
    """Kinds of FLOps components that publish events."""

    MANAGER = "manager"
    BUILDER = "builder"
    AGGREGATOR = "aggregator"
    ROOT_AGGREGATOR = "root_aggregator"
    CLUSTER_AGGREGATOR = "cluster_aggregator"
    LEARNER = "learner"
    DATA_SERVER = "data_server"
    MOCK_DATA_PROVIDER = "mock_data_provider"
    TRACKING_SERVER = "tracking_server"
    INFERENCE_SERVER = "inference_server"


class EventType(enum.StrEnum):
    """What happened."""

    STARTED = "started"
    PROGRESS = "progress"
    ROUND_STARTED = "round_started"
    ROUND_COMPLETED = "round_completed"
    LEARNER_FAILED = "learner_failed"
    COMPLETED = "completed"
    FAILED = "failed"
    LOST = "lost"
    """A component's last will: the broker publishes it when the component's connection drops
    without a goodbye (data: ``reason``, ``connection``)."""
    ONLINE = "online"
    """Published by a component on every (re)connection to the broker (data: ``connection``):
    a sign of life that revokes the last will of an earlier connection of its incarnation."""
    LOG = "log"
    PHASE_CHANGED = "phase_changed"
    """Published by the manager when a project changes phase (data: from, to, reason)."""


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Event:
    """One status event (schema version 1)."""

    project_id: str
    component: Component
    instance: str
    event: EventType
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    timestamp: str = dataclasses.field(default_factory=_now_iso)
    event_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    version: int = SCHEMA_VERSION
    incarnation: str | None = None
    """The publishing connection's id (see :func:`new_incarnation`); ``None`` for publishers
    without one (files, logs, older components)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dictionary form (``incarnation`` only when set)."""
        optional = {} if self.incarnation is None else {"incarnation": self.incarnation}
        return {
            "version": self.version,
            "event_id": self.event_id,
            "project_id": self.project_id,
            "component": str(self.component),
            "instance": self.instance,
            "event": str(self.event),
            "timestamp": self.timestamp,
            "data": self.data,
            **optional,
        }

    def with_incarnation(self, incarnation: str) -> Event:
        """Return the event stamped with ``incarnation`` (unchanged if it carries one)."""
        if self.incarnation is not None:
            return self
        return dataclasses.replace(self, incarnation=incarnation)

    def to_json(self) -> str:
        """Serialise to compact JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        """Validate ``raw`` and build an :class:`Event`.

        Raises
        ------
        EventFormatError
            Naming the first field that does not follow the contract.
        """
        if not isinstance(raw, Mapping):
            raise EventFormatError("event must be a JSON object")
        version = raw.get("version")
        if version != SCHEMA_VERSION:
            raise EventFormatError(
                f"unsupported event version {version!r}; expected {SCHEMA_VERSION}"
            )
        allowed = {
            "version", "event_id", "project_id", "component", "instance", "event",
            "timestamp", "data", "incarnation",
        }
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise EventFormatError(f"unknown event fields: {unknown}")
        for key in ("project_id", "instance", "event_id"):
            value = raw.get(key)
            if not isinstance(value, str) or not is_identifier(value):
                raise EventFormatError(f"event field {key!r} is missing or not a valid identifier")
        incarnation = raw.get("incarnation")
        if incarnation is not None and (
            not isinstance(incarnation, str) or not is_identifier(incarnation)
        ):
            raise EventFormatError("event field 'incarnation' is not a valid identifier")
        try:
            component = Component(str(raw.get("component")))
        except ValueError:
            raise EventFormatError(f"unknown component {raw.get('component')!r}") from None
        try:
            event = EventType(str(raw.get("event")))
        except ValueError:
            raise EventFormatError(f"unknown event type {raw.get('event')!r}") from None
        timestamp = raw.get("timestamp")
        if not isinstance(timestamp, str):
            raise EventFormatError("event field 'timestamp' must be an ISO 8601 string")
        try:
            dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise EventFormatError(f"event timestamp {timestamp!r} is not ISO 8601") from None
        data = raw.get("data", {})
        if not isinstance(data, dict):
            raise EventFormatError("event field 'data' must be an object")
        return cls(
            project_id=raw["project_id"],
            component=component,
            instance=raw["instance"],
            event=event,
            data=dict(data),
            timestamp=timestamp,
            event_id=raw["event_id"],
            version=SCHEMA_VERSION,
            incarnation=incarnation,
        )

    @classmethod
    def from_json(cls, payload: bytes | str) -> Event:
        """Parse and validate a JSON payload.

        Raises
        ------
        EventFormatError
            If the payload is too large, not JSON, or breaks the contract.
        """
        if len(payload) > MAX_EVENT_BYTES:
            raise EventFormatError(f"event payload exceeds {MAX_EVENT_BYTES} bytes")
        try:
            raw = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventFormatError(f"event payload is not valid JSON: {exc}") from None
        return cls.from_dict(raw)


def new_incarnation() -> str:
    """A fresh incarnation id: random, unique per publishing connection."""
    return uuid.uuid4().hex


def connection_data(connection: int, **details: Any) -> dict[str, Any]:
    """Payload of an ``online`` event or a last will: which connection of the incarnation.

    ``connection`` counts the publisher's broker connections from 1, so a receiver can order
    a will and an ``online`` of the same incarnation without comparing clocks.
    """
    return {"connection": connection, **details}


def connection_of(event: Event) -> int | None:
    """The connection number an ``online`` event or a last will carries (``None``: none)."""
    value = event.data.get("connection")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def training_data(
    *,
    metrics: Mapping[str, float | None],
    round: int | None = None,
    total_rounds: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Payload of an aggregator's ``round_completed`` or ``completed`` event.

    Every consumer (the manager's lifecycle, the CLI) reads the same keys: ``round`` (1-based),
    ``total_rounds``, ``metrics`` (numeric values only: ``loss``, ``accuracy``, ...), plus any
    ``details``.
    """
    data: dict[str, Any] = {
        "metrics": {k: float(v) for k, v in metrics.items() if v is not None},
        **details,
    }
    if round is not None:
        data["round"] = round
    if total_rounds is not None:
        data["total_rounds"] = total_rounds
    return data
