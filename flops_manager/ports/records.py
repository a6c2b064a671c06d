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


@dataclasses.dataclass(frozen=True)
class ServiceRecord:
    """A service the manager created on a user's request (mock data provider, inference server)."""

    id: str
    owner: str
    kind: str
    name: str
    request: dict[str, Any]
    created_at: float
    project_id: str | None = None
    state: str = "requested"
    message: str | None = None
