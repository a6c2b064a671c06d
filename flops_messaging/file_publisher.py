"""Publisher that appends events as JSON lines to a file."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from flops_contracts.events import Event
from flops_messaging.publisher import EventPublisher

logger = logging.getLogger(__name__)


class FilePublisher(EventPublisher):
    """Appends one JSON line per event; safe for several processes sharing one file."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        """The events file."""
        return self._path

    def publish(self, event: Event) -> bool:
        """Append ``event`` and flush it to the operating system."""
        line = (event.to_json() + "\n").encode("utf-8")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            logger.warning("could not write event to %s: %s", self._path, exc)
            return False
        return True


def read_events(path: Path) -> list[Event]:
    """Read every well-formed event from a JSON-lines file (malformed lines are skipped)."""
    events: list[Event] = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            events.append(Event.from_json(line))
        except Exception:  # noqa: BLE001 - a torn or foreign line must not stop the reader
            logger.debug("skipping malformed event line in %s", path)
    return events
