"""Admission of event streams, so that streams cannot take every API worker thread.

Each open Server-Sent Events stream holds one of the API's worker threads for up to
``FLOPS_SSE_MAX_S``. Two limits keep the API answering: each owner may hold at most
``FLOPS_SSE_STREAMS_PER_OWNER`` streams (more: 429), and all streams together leave
``FLOPS_API_RESERVED_THREADS`` threads free for ordinary requests such as ``/ready`` (more:
503). Both answers carry ``Retry-After``: the seconds until the oldest stream in the way ends.

:func:`admit` decides (pure); :class:`StreamSlots` keeps the open streams behind a lock.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from flops_contracts.errors import ErrorCode, FlopsError
from flops_manager.ports.errors import BackendUnavailableError


class TooManyStreamsError(FlopsError):
    """The caller holds as many event streams as one owner may (429)."""

    default_code = ErrorCode.RATE_LIMITED


@dataclasses.dataclass(frozen=True)
class StreamLimits:
    """How many streams may be open, and how long one lasts at most."""

    per_owner: int
    total: int
    max_s: float
    grace_s: float = 1.0
    """A slot whose stream should have ended this long ago counts as free (lost close)."""


@dataclasses.dataclass(frozen=True)
class Slot:
    """One open stream: whose, and when it started (monotonic seconds)."""

    owner: str
    started: float


def _retry_after(slots: Iterable[Slot], now: float, max_s: float) -> int:
    """Whole seconds until the oldest of ``slots`` ends (at least 1)."""
    oldest = min((s.started for s in slots), default=now)
    return max(1, math.ceil(max_s - (now - oldest)))


def is_live(slot: Slot, now: float, limits: StreamLimits) -> bool:
    """Whether ``slot``'s stream may still be running at ``now``."""
    return now - slot.started < limits.max_s + limits.grace_s


def admit(slots: Iterable[Slot], owner: str, now: float, limits: StreamLimits) -> FlopsError | None:
    """The error refusing ``owner`` another stream next to ``slots``, or ``None`` to admit.

    Parameters
    ----------
    slots
        The live slots (see :func:`is_live`).
    """
    current = list(slots)
    mine = [s for s in current if s.owner == owner]
    refuse: type[FlopsError]
    if len(mine) >= limits.per_owner:
        in_the_way, refuse = mine, TooManyStreamsError
        why = f"you have {len(mine)} event streams open, the most one user may hold; close one"
    elif len(current) >= limits.total:
        in_the_way, refuse = current, BackendUnavailableError
        why = f"all {limits.total} event stream slots are in use"
    else:
        return None
    wait = _retry_after(in_the_way, now, limits.max_s)
    return refuse(f"{why}; poll GET .../events?after=N instead, or retry in {wait} s",
                  details={"retry_after": wait})


class StreamSlots:
    """The open event streams of one API process."""

    def __init__(self, limits: StreamLimits, *, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._slots: dict[int, Slot] = {}
        self._ids = itertools.count()

    def acquire(self, owner: str) -> Callable[[], None]:
        """Take a slot for ``owner``; return the (idempotent) function that frees it.

        Raises
        ------
        TooManyStreamsError
            If ``owner`` holds ``per_owner`` streams already.
        BackendUnavailableError
            If ``total`` streams are open.
        """
        with self._lock:
            now = self.clock()
            self._slots = {k: s for k, s in self._slots.items() if is_live(s, now, self.limits)}
            refusal = admit(self._slots.values(), owner, now, self.limits)
            if refusal is not None:
                raise refusal
            key = next(self._ids)
            self._slots[key] = Slot(owner, now)

        def release() -> None:
            with self._lock:
                self._slots.pop(key, None)

        return release

    def open_streams(self) -> Mapping[str, int]:
        """Owner -> number of live streams (for diagnostics and tests)."""
        with self._lock:
            now = self.clock()
            counts: dict[str, int] = {}
            for slot in self._slots.values():
                if is_live(slot, now, self.limits):
                    counts[slot.owner] = counts.get(slot.owner, 0) + 1
            return counts
