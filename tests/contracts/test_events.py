import json
from typing import Any

import pytest

from flops_contracts.errors import EventFormatError
from flops_contracts.events import MAX_EVENT_BYTES, Component, Event, EventType
from flops_contracts.topics import SUBSCRIPTION, event_topic, parse_event_topic


def make_event(**overrides):
    base: dict[str, Any] = {"project_id": "p1", "component": Component.LEARNER,
                            "instance": "learner-0", "event": EventType.STARTED,
                            "data": {"k": 1}}
    base.update(overrides)
    return Event(**base)


def test_round_trip():
    event = make_event()
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.version == 1 and len(again.event_id) == 32


def test_incarnation_is_optional_and_round_trips():
    legacy = make_event().to_dict()
    assert "incarnation" not in legacy  # events of older components read as before
    assert Event.from_dict(legacy).incarnation is None
    stamped = make_event().with_incarnation("c0ffee")
    assert Event.from_json(stamped.to_json()) == stamped
    assert stamped.with_incarnation("other").incarnation == "c0ffee"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(component="wizard"), "component"),
        (lambda d: d.update(event="exploded"), "event type"),
        (lambda d: d.update(project_id="a/b"), "project_id"),
        (lambda d: d.update(timestamp="yesterday"), "ISO"),
        (lambda d: d.update(data=[1]), "data"),
        (lambda d: d.update(extra=1), "unknown"),
        (lambda d: d.pop("instance"), "instance"),
        (lambda d: d.update(incarnation="a/b"), "incarnation"),
        (lambda d: d.update(incarnation=7), "incarnation"),
    ],
)
def test_invalid_events_are_rejected_with_reason(mutate, needle):
    raw = make_event().to_dict()
    mutate(raw)
    with pytest.raises(EventFormatError) as info:
        Event.from_json(json.dumps(raw))
    assert needle in info.value.message


def test_non_json_and_oversized_payloads_are_rejected():
    with pytest.raises(EventFormatError, match="not valid JSON"):
        Event.from_json(b"{nope")
    with pytest.raises(EventFormatError, match="exceeds"):
        Event.from_json(b" " * (MAX_EVENT_BYTES + 1))


def test_topics_round_trip_and_validate():
    topic = event_topic("p1", Component.AGGREGATOR, "classic")
    assert topic == "flops/v1/projects/p1/aggregator/classic/events"
    assert parse_event_topic(topic) == ("p1", Component.AGGREGATOR, "classic")
    assert SUBSCRIPTION.count("+") == 3
    with pytest.raises(ValueError):
        event_topic("p/1", Component.AGGREGATOR, "x")
    with pytest.raises(ValueError):
        event_topic("p1", Component.AGGREGATOR, "+")
    with pytest.raises(ValueError):
        parse_event_topic("flops/v1/projects/p1/wizard/x/events")
    with pytest.raises(ValueError):
        parse_event_topic("other/topic")
