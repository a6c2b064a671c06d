"""Publisher that writes events to the Python log (the stand-alone fallback)."""

from __future__ import annotations

import logging

from flops_contracts.events import Event
from flops_messaging.publisher import EventPublisher

logger = logging.getLogger("flops.events")


class LogPublisher(EventPublisher):
    """Logs each event as one JSON line at INFO level."""

    def publish(self, event: Event) -> bool:
        """Log ``event``; always confirmed."""
        logger.info("event %s", event.to_json())
        return True
