"""Last wills told apart from dropped connections of live components (pure).

The broker publishes a component's last will (``lost``) whenever a connection of it drops
without a goodbye: when the process died, but also when the broker restarted or dropped a
connection whose process lives on and reconnects. A publisher numbers its connections (1,
2, ...); a will carries the number of its connection, and on every (re)connection the
component says ``online`` with the new number (:func:`flops_contracts.events.connection_of`).

So a will of a component's current incarnation is not final when it arrives: it is kept
*pending* in the component's record (``will``: connection, when it arrived, reason,
event id). The rules:

* a will of a retired incarnation, of another incarnation than the one reporting, of a
  connection older than one already known, of a component that finished
  (``completed``/``failed``), or (with no incarnation known, e.g. after the manager restarted
  the component) stamped before the record changes nothing;
* a pending will is revoked by a sign of life of its incarnation: ``online`` of a later
  connection, or any later event the planner accepts;
* a pending will expires ``grace_s`` after it arrived, counted only while the manager hears
  the broker (from when its own connection was last (re)established): a component cannot
  show a sign of life while the manager cannot hear it. An expired will counts as the
  component's loss (:func:`expire`).

Wills without a connection number (older components) are decided as before, by
:mod:`.incarnations` alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flops_contracts.events import Event, EventType, connection_of
from flops_manager.lifecycle import incarnations
from flops_manager.lifecycle.incarnations import FINISHED, Entry

PENDING = "will"
"""Key of a component record's pending will."""

DEFAULT_REASON = "connection lost"


@dataclasses.dataclass(frozen=True)
class Hearing:
    """When pending wills may expire: the grace, and since when the manager hears the broker.

    ``since`` is when the manager's connection to the broker was last established (``None``:
    it is disconnected now, so no will expires).
    """

    grace_s: float
    since: float | None = 0.0


def pending(entry: Entry | None) -> dict[str, Any] | None:
    """The pending will of a component's record, if any."""
    if entry is None:
        return None
    will = entry.get(PENDING)
    return dict(will) if isinstance(will, dict) else None


def _connection(entry: Entry) -> int:
    value = entry.get("connection")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def suspect(seen: Entry | None, event: Event, *, now: float) -> dict[str, Any] | None:
    """The record after the numbered will ``event`` arrived at ``now`` (``None``: no change).

    The will is kept pending (see the module's rules); nothing is failed yet.
    """
    connection = connection_of(event)
    if connection is None or event.event is not EventType.LOST:
        raise ValueError("suspect() takes a last will with a connection number")
    if seen is not None:
        current = seen.get("incarnation")
        already = pending(seen)
        if (seen.get("event_id") == event.event_id
                or (already is not None and already.get("event_id") == event.event_id)
                or event.incarnation in incarnations.retired(seen)
                or (current is not None and current != event.incarnation)
                or (current is None and incarnations.older(event, seen))
                or str(seen.get("state")) in FINISHED
                or (current == event.incarnation and connection < _connection(seen))):
            return None
    reason = str(event.data.get("reason") or DEFAULT_REASON)[:500]
    entry: dict[str, Any] = {"state": "online", **(seen or {})}
    if event.incarnation is not None:
        entry["incarnation"] = event.incarnation
    entry["connection"] = connection
    entry[PENDING] = {"connection": connection, "since": now, "reason": reason,
                      "event_id": event.event_id}
    return entry


def online(seen: Entry | None, event: Event) -> dict[str, Any] | None:
    """The record after the ``online`` event ``event`` (``None``: no change).

    ``online`` of the current incarnation records its connection number and revokes a pending
    will of an earlier connection; of a new incarnation, it is that incarnation's first sign
    and retires the previous one (as any event of a new incarnation does).
    """
    connection = connection_of(event) or 0
    if seen is None or seen.get("incarnation") != event.incarnation:
        if seen is not None and not incarnations.accepts(seen, event):
            return None
        entry = incarnations.record(seen, event)
        entry["connection"] = connection
        # stamped when the connection opened: events created before it (published once it
        # opened) are not older than anything the incarnation said
        entry["at"] = ""
        return entry
    if connection <= _connection(seen):
        return None
    entry = {**seen, "connection": connection}
    will = pending(seen)
    if will is not None and int(will.get("connection", 0)) < connection:
        del entry[PENDING]
    return entry


def overdue(entry: Entry, *, now: float, hearing: Hearing) -> bool:
    """Whether ``entry``'s pending will outlived its grace without a sign of life."""
    will = pending(entry)
    if will is None or hearing.since is None:
        return False
    return now >= max(float(will.get("since", 0.0)), hearing.since) + hearing.grace_s


def expire(entry: Entry) -> dict[str, Any]:
    """``entry`` after its pending will expired: the component is ``lost``.

    Its incarnation is retired (a late event of the dead connection changes nothing) and the
    will's reason kept as the message.
    """
    will = pending(entry) or {}
    kept = {k: v for k, v in entry.items() if k != PENDING}
    lost = incarnations.restarted(kept, at=str(entry.get("at", "")))
    lost.update(state=EventType.LOST.value, event_id=will.get("event_id"),
                message=str(will.get("reason") or DEFAULT_REASON))
    return lost
