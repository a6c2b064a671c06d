"""Which component may send which event (pure).

Events that move a project forward are accepted only from the components of the role that
may send them. The broker binds each working login to its project's topics of its own role,
and ingestion binds the payload to the topic; this table then says what each component may
claim. An event that breaks it is stored as rejected with the reason and never reaches the
planner.
"""

from __future__ import annotations

from collections.abc import Mapping

from flops_contracts.events import Component, Event, EventType

_AGGREGATORS = frozenset({Component.AGGREGATOR, Component.ROOT_AGGREGATOR})
_ALL_AGGREGATORS = _AGGREGATORS | {Component.CLUSTER_AGGREGATOR}

DATA_RIGHTS: Mapping[str, frozenset[Component]] = {
    "images": frozenset({Component.BUILDER}),
    "env_dir": frozenset({Component.BUILDER}),
    "python": frozenset({Component.BUILDER}),
    "repo_dir": frozenset({Component.BUILDER}),
    "model_uri": _AGGREGATORS,
    "registry_uri": _AGGREGATORS,
    "registered_model": _AGGREGATORS,
    "model_version": _AGGREGATORS,
}
"""Keys of a ``completed`` event that steer a project (what it runs, which model it serves)
-> who may send them (other events may report such values; the planner takes them only from
``completed``)."""

EVENT_RIGHTS: Mapping[EventType, frozenset[Component]] = {
    EventType.ROUND_COMPLETED: _ALL_AGGREGATORS,
    EventType.LEARNER_FAILED: _ALL_AGGREGATORS,
    EventType.PHASE_CHANGED: frozenset({Component.MANAGER}),
}
"""Event types only some components may send (round results: the aggregators)."""


def refusal(event: Event) -> str | None:
    """Why ``event`` must not be accepted from its component, or ``None``."""
    allowed = EVENT_RIGHTS.get(event.event)
    if allowed is not None and event.component not in allowed:
        return f"{event.component.value} may not send {event.event.value} events"
    if event.event is not EventType.COMPLETED:
        return None
    for key in sorted(event.data):
        senders = DATA_RIGHTS.get(key)
        if senders is not None and event.component not in senders:
            return f"{event.component.value} may not send '{key}' (only {_names(senders)})"
    return None


def _names(components: frozenset[Component]) -> str:
    return ", ".join(sorted(c.value for c in components))
