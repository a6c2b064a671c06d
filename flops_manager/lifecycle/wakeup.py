"""Wake the reconciler when an event arrives instead of waiting for its next interval.

A component says it is ready (or failed, or finished) by publishing an event; the reconciler
acts on the stored event. Without a wake-up every such step waited for the rest of the
reconcile interval (1 s by default, on average half of it per step, several steps per project).
"""

from __future__ import annotations

from collections.abc import Callable

from flops_manager.ports.event_source import MessageHandler
from flops_manager.services.ingest import IngestResult, Outcome


def waking(
    handle: Callable[[str, bytes], IngestResult], wake: Callable[[], None]
) -> MessageHandler:
    """Return a handler that runs ``handle`` and calls ``wake`` after an accepted event."""

    def handler(topic: str, payload: bytes) -> IngestResult:
        result = handle(topic, payload)
        if result.outcome is Outcome.ACCEPTED:
            wake()
        return result

    return handler
