"""Event ingestion: validate a raw message, store it, feed it to the lifecycle planner.

A message is accepted only if its topic is a FLOps event topic, its payload names the same
project, component and instance, the project exists, and its component may send it
(:mod:`flops_manager.identity.event_policy`). The broker binds each component's login to its
project's topics of its role, so the topic is the sender's identity. Everything else is kept
as a rejected event with the reason (of the project it claimed to concern, for its owner).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import uuid

from flops_contracts.errors import EventFormatError
from flops_contracts.events import Event
from flops_contracts.topics import parse_event_topic
from flops_manager.identity import event_policy
from flops_manager.lifecycle import planner
from flops_manager.ports.errors import NotFoundError, UnstorableError
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import RejectedEvent
from flops_manager.services.clock import Clock, system_clock
from flops_manager.services.mutate import mutate_project

log = logging.getLogger(__name__)

MAX_KEPT_PAYLOAD = 4096


class Outcome(enum.StrEnum):
    """What happened to a message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclasses.dataclass(frozen=True)
class IngestResult:
    """The outcome of one message."""

    outcome: Outcome
    reason: str | None = None
    seq: int | None = None


class EventIngest:
    """Turns raw (topic, payload) messages into stored events and project transitions."""

    def __init__(self, store: ProjectStore, *, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock

    def _reject(self, topic: str, payload: bytes, reason: str,
                project_id: str | None = None) -> IngestResult:
        text = payload[:MAX_KEPT_PAYLOAD].decode("utf-8", errors="replace")
        self.store.add_rejected_event(
            RejectedEvent(uuid.uuid4().hex, topic, text, reason, self.clock(), project_id)
        )
        log.warning("rejected event on %s: %s", topic, reason)
        return IngestResult(Outcome.REJECTED, reason)

    def _apply(self, event: Event, now: float) -> None:
        """Let the planner apply ``event`` to its project.

        A duplicate is applied again: the planner ignores what it has already seen, and this
        covers a crash between storing an event and applying it.
        """
        with contextlib.suppress(NotFoundError):  # deleted meanwhile: the event is kept
            mutate_project(
                self.store,
                event.project_id,
                lambda p: planner.plan_event(p, event, now=now).project,
                now=now,
            )

    def handle(self, topic: str, payload: bytes) -> IngestResult:
        """Validate, store and apply one message; invalid ones are stored as rejected."""
        try:
            parts = parse_event_topic(topic)
            event = Event.from_json(payload)
        except (ValueError, EventFormatError) as exc:
            return self._reject(topic, payload, str(exc))
        mismatch = [
            name
            for name, expected, got in (
                ("project_id", parts.project_id, event.project_id),
                ("component", parts.component, event.component),
                ("instance", parts.instance, event.instance),
            )
            if expected != got
        ]
        if mismatch:
            return self._reject(topic, payload, f"topic does not match payload: {mismatch}",
                                parts.project_id)
        try:
            self.store.get_project(event.project_id)
        except NotFoundError:
            return self._reject(topic, payload, f"unknown project {event.project_id}")
        forbidden = event_policy.refusal(event)
        if forbidden is not None:
            return self._reject(topic, payload, forbidden, event.project_id)
        now = self.clock()
        try:
            stored = self.store.append_event(event.project_id, event.to_dict(), received_at=now)
            self._apply(event, now)
        except UnstorableError as exc:  # e.g. a metric beyond 64 bits: kept as rejected
            return self._reject(topic, payload, exc.message)
        if stored is None:
            return IngestResult(Outcome.DUPLICATE)
        return IngestResult(Outcome.ACCEPTED, seq=stored.seq)
