"""MQTT topic layout for FLOps events.

Events of instance ``I`` of component ``C`` in project ``P`` go to
``flops/v1/projects/P/C/I/events``; the manager subscribes to :data:`SUBSCRIPTION`.
"""

from __future__ import annotations

from typing import NamedTuple

from flops_contracts.events import Component
from flops_contracts.ids import check_identifier

PREFIX = "flops/v1/projects"
SUBSCRIPTION = f"{PREFIX}/+/+/+/events"


class TopicParts(NamedTuple):
    """The identifying levels of an event topic."""

    project_id: str
    component: Component
    instance: str


def event_topic(project_id: str, component: Component, instance: str) -> str:
    """Return the topic on which ``instance`` of ``component`` publishes its events."""
    check_identifier(project_id, what="project id")
    check_identifier(instance, what="instance name")
    return f"{PREFIX}/{project_id}/{Component(component)}/{instance}/events"


def parse_event_topic(topic: str) -> TopicParts:
    """Split an event topic into its parts.

    Raises
    ------
    ValueError
        If ``topic`` is not an event topic.
    """
    head = PREFIX + "/"
    if not topic.startswith(head) or not topic.endswith("/events"):
        raise ValueError(f"not a FLOps event topic: {topic!r}")
    levels = topic[len(head) : -len("/events")].split("/")
    if len(levels) != 3:
        raise ValueError(f"not a FLOps event topic: {topic!r}")
    project_id, component, instance = levels
    check_identifier(project_id, what="project id")
    check_identifier(instance, what="instance name")
    try:
        kind = Component(component)
    except ValueError:
        raise ValueError(f"unknown component {component!r} in topic {topic!r}") from None
    return TopicParts(project_id, kind, instance)
