"""Readiness: are the database and the broker reachable."""

from __future__ import annotations

from flops_contracts.errors import FlopsError
from flops_manager.ports.event_source import EventSource
from flops_manager.ports.project_store import ProjectStore


def check_ready(store: ProjectStore, events: EventSource | None) -> dict[str, str]:
    """Return ``{"database": problem, "broker": problem}`` for every failing dependency."""
    problems: dict[str, str] = {}
    try:
        store.ping()
    except FlopsError as exc:
        problems["database"] = exc.message
    if events is not None:
        try:
            events.ping()
        except FlopsError as exc:
            problems["broker"] = exc.message
    return problems
