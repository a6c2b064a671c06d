"""Records the store returns besides projects (pure data)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results plus the total count."""

    items: Sequence[T]
    total: int


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    """An accepted event with its per-project sequence number."""

    project_id: str
    seq: int
    event: dict[str, Any]
    received_at: float

    @property
    def event_id(self) -> str:
        """The event's unique id."""
        return str(self.event["event_id"])


@dataclasses.dataclass(frozen=True)
class RejectedEvent:
    """A message that failed validation, kept with the reason."""

    id: str
    topic: str
    payload: str
    reason: str
    received_at: float
    project_id: str | None = None
    """The project the message claimed to concern (``None`` when it named none)."""


REQUESTED = "requested"
"""State of a record whose service was not created yet."""
PRESENT, ABSENT = "present", "absent"
"""Desired states of a service record: the service should exist, or be removed."""


OBSERVED_FIELDS = ("state", "message", "address", "attempts", "retry_at")
"""Fields of a :class:`ServiceRecord` the reconciler owns."""


@dataclasses.dataclass(frozen=True)
class ServiceRecord:
    """A service the manager runs on a user's request (mock data provider, inference server).

    ``desired`` is what the user wants (the service ``present``, or ``absent``: remove it,
    then the record); only the API writes it. The reconciler writes the observed fields
    (:data:`OBSERVED_FIELDS`): ``state`` (``requested`` until it created the service, then the
    orchestrator's state, or ``failed``), ``message`` (why), ``address`` (where users reach
    it), ``attempts`` (failed tries to create it) and ``retry_at`` (epoch seconds of the next).
    """

    id: str
    owner: str
    kind: str
    name: str
    request: dict[str, Any]
    created_at: float
    project_id: str | None = None
    state: str = REQUESTED
    message: str | None = None
    address: str | None = None
    desired: str = PRESENT
    attempts: int = 0
    retry_at: float = 0.0

    @property
    def needs_work(self) -> bool:
        """Whether the reconciler must still create or remove the service."""
        return self.desired == ABSENT or self.state == REQUESTED

    def replace(self, **changes: Any) -> ServiceRecord:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
