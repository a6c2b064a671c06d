"""Convenience wrapper that stamps events with a component's identity."""

from __future__ import annotations

from typing import Any

from flops_contracts.events import Component, Event, EventType
from flops_messaging.publisher import EventPublisher


class EventEmitter:
    """Builds and publishes events for one component instance of one project."""

    def __init__(
        self,
        publisher: EventPublisher,
        *,
        project_id: str,
        component: Component,
        instance: str,
    ) -> None:
        self.publisher = publisher
        self.project_id = project_id
        self.component = component
        self.instance = instance

    def emit(self, event: EventType, **data: Any) -> Event:
        """Publish ``event`` with ``data`` and return it."""
        message = Event(
            project_id=self.project_id,
            component=self.component,
            instance=self.instance,
            event=event,
            data=data,
        )
        self.publisher.publish(message)
        return message

    def close(self) -> None:
        """Close the underlying publisher."""
        self.publisher.close()
