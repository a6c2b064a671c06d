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


class EventTail:
    """Reads the events appended to a JSON-lines file since the last call (for live views)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read_new(self) -> list[Event]:
        """Return events from complete lines written since the previous call."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # leave a partly written last line for next time
        self._offset += end
        return _parse_lines(chunk[:end].decode("utf-8", errors="replace").splitlines())


def _parse_lines(lines: list[str]) -> list[Event]:
    events: list[Event] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            events.append(Event.from_json(line))
        except Exception:  # noqa: BLE001 - a torn or foreign line must not stop the reader
            logger.debug("skipping malformed event line")
    return events


def read_events(path: Path) -> list[Event]:
    """Read every well-formed event from a JSON-lines file (malformed lines are skipped)."""
    if not path.exists():
        return []
    return _parse_lines(path.read_text(encoding="utf-8").splitlines())
