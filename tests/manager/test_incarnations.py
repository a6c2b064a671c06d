"""The last will is honoured for the incarnation that sent it, whatever its timestamp."""

from __future__ import annotations

from typing import Any

from flops_contracts.events import Component, Event, EventType
from flops_manager.lifecycle import incarnations, planner
from flops_manager.lifecycle.state import Phase, Project

PID = "p0123456789abcdef"
CONNECTED = "2026-01-01T00:00:00Z"
"""When the aggregator's connection opened: the timestamp its last will carries."""


def training() -> Project:
    return Project(id=PID, owner="alice", spec={"post_training_steps": []},
                   repository={"url": "https://x/y"}, created_at=0, updated_at=0,
                   phase=Phase.TRAINING, phase_since=0)


def agg(event: EventType, incarnation: str | None, ts: str, **kw: Any) -> Event:
    return Event(project_id=PID, component=Component.AGGREGATOR, instance="agg-0", event=event,
                 timestamp=ts, incarnation=incarnation, **kw)


def will(incarnation: str | None) -> Event:
    """A last will: stamped when its connection opened, one fixed event id per connection."""
    return agg(EventType.LOST, incarnation, CONNECTED, event_id=f"will-{incarnation}",
               data={"reason": "connection to the broker dropped without a goodbye"})


def apply(project: Project, *events: Event) -> Project:
    for event in events:
        project = planner.plan_event(project, event, now=5.0).project
    return project


def reported_round(incarnation: str | None, round_: int = 2) -> Project:
    return apply(training(),
                 agg(EventType.ROUND_COMPLETED, incarnation, f"2026-01-01T00:01:0{round_}Z",
                     data={"round": round_, "metrics": {"accuracy": 0.9}}))


def test_will_before_any_report_fails_the_project_naming_the_loss() -> None:
    started = apply(training(), agg(EventType.STARTED, "inc-a", CONNECTED))
    failed = apply(started, will("inc-a"))
    assert failed.phase is Phase.FAILED
    assert failed.last_error == ("aggregator 'agg-0' lost: connection to the broker dropped "
                                 "without a goodbye")
    assert failed.components["aggregator/agg-0"]["state"] == "lost"


def test_will_older_than_the_incarnations_last_report_is_not_honoured() -> None:
    """A will without a connection number (an older component) keeps the timestamp order.

    Numbered wills are kept pending instead (tests/manager/test_wills.py).
    """
    project = reported_round("inc-a")
    assert apply(project, will("inc-a")) == project


def test_will_of_an_older_incarnation_is_ignored() -> None:
    first = reported_round("inc-a", 1)
    restarted = apply(first, agg(EventType.STARTED, "inc-b", "2026-01-01T00:00:30Z"))
    assert incarnations.retired(restarted.components["aggregator/agg-0"]) == ["inc-a"]
    assert apply(restarted, will("inc-a")) == restarted
    # and a late ordinary event of the old incarnation too
    late = agg(EventType.ROUND_COMPLETED, "inc-a", "2026-01-01T00:09:00Z",
               data={"round": 5, "metrics": {}})
    assert apply(restarted, late) == restarted


def test_duplicated_will_changes_nothing() -> None:
    project = reported_round("inc-a")
    learner = Event(project_id=PID, component=Component.LEARNER, instance="l-0",
                    event=EventType.STARTED, incarnation="inc-l")
    learner_will = Event(project_id=PID, component=Component.LEARNER, instance="l-0",
                         event=EventType.LOST, incarnation="inc-l")
    once = apply(project, learner, learner_will)
    assert once.components["learner/l-0"]["state"] == "lost"
    late = Event(project_id=PID, component=Component.LEARNER, instance="l-0",
                 event=EventType.STARTED, incarnation="inc-l")
    assert apply(once, learner_will) == once
    assert apply(once, late) == once  # the connection ended with its will


def test_will_of_an_unknown_incarnation_is_ignored_while_another_reports() -> None:
    project = reported_round("inc-a")
    assert apply(project, will("inc-z")) == project


def test_events_without_incarnation_keep_timestamp_order() -> None:
    project = reported_round(None)
    assert apply(project, will(None)) == project  # older than the round: as before
    assert apply(project, agg(EventType.LOST, None, "2026-01-01T00:05:00Z")).phase is Phase.FAILED


def test_restart_mark_retires_the_stopped_incarnation() -> None:
    building = Project(id=PID, owner="alice", spec={}, repository={"url": "https://x/y"},
                       created_at=0, updated_at=0, phase=Phase.BUILDING, phase_since=0)
    key = f"builder/{PID}-builder-0"
    builder = Event(project_id=PID, component=Component.BUILDER, instance=f"{PID}-builder-0",
                    event=EventType.STARTED, incarnation="inc-old")
    started = apply(building, builder)
    redone = planner.plan_lost_services(started, now=1e9).project
    assert incarnations.retired(redone.components[key]) == ["inc-old"]
    old_will = Event(project_id=PID, component=Component.BUILDER, instance=f"{PID}-builder-0",
                     event=EventType.LOST, timestamp="2100-01-01T00:00:00Z",
                     incarnation="inc-old")
    assert apply(redone, old_will) == redone


def test_retired_incarnations_are_bounded() -> None:
    entry = None
    for n in range(incarnations.MAX_RETIRED + 5):
        entry = incarnations.record(entry, agg(EventType.STARTED, f"inc-{n}", CONNECTED))
    assert len(incarnations.retired(entry)) == incarnations.MAX_RETIRED
    assert entry is not None and entry["incarnation"] == f"inc-{incarnations.MAX_RETIRED + 4}"


def test_will_after_the_component_finished_changes_nothing() -> None:
    """A one-shot component stopped after it completed: its connection's will is no failure."""
    project = training().replace(phase=Phase.DEPLOYING)
    provider = Component.MOCK_DATA_PROVIDER
    done = Event(project_id=PID, component=provider, instance="mdp-0",
                 event=EventType.COMPLETED, incarnation="inc-m",
                 timestamp="2026-01-01T00:02:00Z")
    provider_will = Event(project_id=PID, component=provider, instance="mdp-0",
                          event=EventType.LOST, timestamp=CONNECTED, incarnation="inc-m")
    completed = apply(project, done)
    assert completed.components["mock_data_provider/mdp-0"]["state"] == "completed"
    assert apply(completed, provider_will) == completed
