"""Injectable time and id sources, so use cases stay deterministic in tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

Clock = Callable[[], float]
IdFactory = Callable[[], str]


def system_clock() -> float:
    """Return the current time in epoch seconds."""
    return time.time()


def new_project_id() -> str:
    """Return a fresh project id (short enough for service names)."""
    return "p" + uuid.uuid4().hex[:16]


def new_record_id() -> str:
    """Return a fresh id for service records."""
    return "s" + uuid.uuid4().hex[:16]
