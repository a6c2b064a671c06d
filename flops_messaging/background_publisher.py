"""Publisher that hands events to another publisher on a background thread."""

from __future__ import annotations

import logging
import queue
import threading

from flops_contracts.events import Event
from flops_messaging.publisher import EventPublisher

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 60.0
"""How long :meth:`BackgroundPublisher.close` waits for queued events to be published."""


class BackgroundPublisher(EventPublisher):
    """Queues events and publishes them with ``inner`` on one thread, in order.

    A training round then never waits for the events it reports: not for a file lock, nor for
    an MQTT broker's acknowledgement. :meth:`publish` returns ``False`` (delivery is not
    confirmed when it returns); :meth:`close` publishes what is queued, then closes ``inner``.

    Parameters
    ----------
    inner
        The publisher that delivers the events.
    drain_timeout_s
        Longest wait in :meth:`close` for queued events; those left are logged and dropped.
    """

    def __init__(self, inner: EventPublisher, *,
                 drain_timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        self.inner = inner
        self.drain_timeout_s = drain_timeout_s
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def publish(self, event: Event) -> bool:
        """Queue ``event`` for the background thread; return ``False`` (not yet confirmed)."""
        with self._lock:
            if self._closed:
                logger.warning("event %s published after close; dropped", event.event_id)
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-publisher",
                                                daemon=True)
                self._thread.start()
            self._queue.put(event)
        return False

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self.inner.publish(event)
            except Exception:  # the port says publish never raises; a bug must not stop others
                logger.warning("publishing event %s failed", event.event_id, exc_info=True)

    def close(self) -> None:
        """Publish the queued events (waiting at most ``drain_timeout_s``), then close."""
        with self._lock:
            thread, self._closed = self._thread, True
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(self.drain_timeout_s)
            if thread.is_alive():
                logger.warning("events still queued after %.0fs; closing without them",
                               self.drain_timeout_s)
        self.inner.close()
