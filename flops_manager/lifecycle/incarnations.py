"""Which component events still count: ordering by incarnation, not by clocks (pure).

A component's record in ``Project.components`` keeps the incarnation (publishing connection,
:attr:`flops_contracts.events.Event.incarnation`) of its latest accepted event and the
incarnations it has retired. The rules:

* an event already recorded (same ``event_id``) changes nothing;
* an event of a retired incarnation (replaced by a newer one, or ended by its ``lost``) changes
  nothing;
* the ``lost`` last will of the current incarnation counts only if nothing newer of that
  incarnation was recorded (its timestamp is the connection's opening) and the component had
  not finished (``completed``/``failed``); see :func:`accepts` for why. This holds for wills
  without a connection number (older components): the planner keeps a numbered will pending
  until its grace ends instead (:mod:`.wills`);
* a ``lost`` of an incarnation never seen is ignored while another incarnation reports (it
  cannot be placed relative to the current one);
* another event of a new incarnation is accepted and retires the previous one;
* within one incarnation (one process, one clock), and for events without an incarnation
  (files, older components), an event older than the recorded one changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flops_contracts.events import Event, EventType

FINISHED = frozenset({EventType.COMPLETED.value, EventType.FAILED.value})
"""States after which a component has nothing more to say: the will of its connection, which
fires when the manager stops a finished one-shot component (builder, mock data provider),
means nothing then."""

MAX_RETIRED = 16
"""How many retired incarnations a component's record remembers."""

Entry = Mapping[str, Any]
"""A component's stored record: ``state``, ``at``, ``event_id``, ``incarnation``, ``retired``."""


def parse_timestamp(value: str) -> dt.datetime:
    """An event timestamp as an aware datetime (the earliest one if it cannot be parsed)."""
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)


def older(event: Event, seen: Entry) -> bool:
    """Whether ``event`` is stamped before what ``seen`` recorded last."""
    return parse_timestamp(event.timestamp) < parse_timestamp(str(seen.get("at", "")))


def retired(seen: Entry | None) -> list[str]:
    """The incarnations ``seen`` has retired (its current one not included)."""
    if seen is None:
        return []
    return [str(i) for i in seen.get("retired") or []]


def accepts(seen: Entry | None, event: Event) -> bool:
    """Whether ``event`` updates a component whose record is ``seen`` (``None``: none yet)."""
    if seen is None:
        return True
    if seen.get("event_id") == event.event_id:
        return False
    incarnation, current = event.incarnation, seen.get("incarnation")
    if incarnation is not None and incarnation in retired(seen):
        return False
    if incarnation is None or current is None:
        return not older(event, seen)
    if incarnation == current:
        # A will is stamped when its connection opened, so within one incarnation it is older
        # than anything the component reported since: honouring it anyway failed running
        # projects whenever the broker restarted (Mosquitto delivers the wills of the dropped
        # connections while the components reconnect and go on). Until a will can be told from
        # a death, within one incarnation the timestamp order decides, as for any event.
        if event.event is EventType.LOST and str(seen.get("state")) in FINISHED:
            return False
        return not older(event, seen)
    return event.event is not EventType.LOST


def _retiring(seen: Entry | None, *ended: str | None) -> list[str]:
    """``seen``'s retired incarnations plus ``ended`` ones (most recent last, bounded)."""
    kept = retired(seen)
    for incarnation in ended:
        if incarnation is not None and incarnation not in kept:
            kept.append(incarnation)
    return kept[-MAX_RETIRED:]


def record(seen: Entry | None, event: Event) -> dict[str, Any]:
    """The component's new record after accepting ``event``.

    A new incarnation retires the previous one; a ``lost`` retires its own, so a repeated will
    or a late event of the dead connection changes nothing. The record keeps the incarnation's
    latest connection number and drops a pending will (:mod:`.wills`): an accepted event of
    the incarnation is a sign of life.
    """
    previous = None if seen is None else seen.get("incarnation")
    ended = [previous if previous != event.incarnation else None]
    if event.event is EventType.LOST:
        ended.append(event.incarnation)
    entry: dict[str, Any] = {"state": event.event.value, "at": event.timestamp,
                             "event_id": event.event_id}
    if event.incarnation is not None:
        entry["incarnation"] = event.incarnation
        if seen is not None and previous == event.incarnation and "connection" in seen:
            entry["connection"] = seen["connection"]  # see :mod:`.wills`
    gone = _retiring(seen, *ended)
    if gone:
        entry["retired"] = gone
    return entry


def restarted(seen: Entry | None, *, at: str) -> dict[str, Any]:
    """The record of a component whose instance the manager stops and starts again at ``at``.

    The stopped instance's incarnation is retired, so its last will cannot fail the new one.
    """
    entry: dict[str, Any] = {"state": "restarted", "at": at, "event_id": None}
    gone = _retiring(seen, None if seen is None else seen.get("incarnation"))
    if gone:
        entry["retired"] = gone
    return entry
