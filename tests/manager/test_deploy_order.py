"""The deploying step: what starts together, what waits, and events in either order (pure)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from flops_contracts.events import Component, Event, EventType
from flops_manager.lifecycle import planner
from flops_manager.lifecycle.actions import ActionKind
from flops_manager.lifecycle.state import Phase, Project

PID = "p0123456789abcdef"
MOCK = {"mock_data": {"partitioner": "dirichlet"}}


def built(spec: dict[str, Any]) -> Project:
    """A project whose builder just completed (the decision's project)."""
    project = Project(id=PID, owner="alice", spec=spec, repository={"url": "https://x/y"},
                      created_at=0, updated_at=0, phase=Phase.BUILDING, phase_since=0)
    return planner.plan_event(project, event("builder", "completed", 1, env_dir="/e"),
                              now=1).project


def event(component: str, what: str, second: int, **data: Any) -> Event:
    return Event(project_id=PID, component=Component(component), instance=f"{component}-0",
                 event=EventType(what), data=data, timestamp=f"2026-01-01T00:00:{second:02d}Z",
                 event_id=f"{component}-{what}-{second}")


def queued(project: Project) -> list[str]:
    return [p.action["kind"] for p in project.pending]


def test_aggregator_is_deployed_in_the_same_step_as_the_data_server() -> None:
    project = built(MOCK)
    kinds = queued(project)
    assert project.phase is Phase.DEPLOYING
    assert ActionKind.DEPLOY_DATA.value in kinds and ActionKind.DEPLOY_AGGREGATOR.value in kinds
    assert kinds.index(ActionKind.DEPLOY_DATA.value) < kinds.index(
        ActionKind.DEPLOY_AGGREGATOR.value)  # the learners' critical path first
    assert ActionKind.DEPLOY_LEARNERS.value not in kinds


def test_learners_start_only_when_the_data_is_complete() -> None:
    project = built(MOCK)
    progress = planner.plan_event(project, event("mock_data_provider", "started", 2), now=2)
    assert ActionKind.DEPLOY_LEARNERS.value not in queued(progress.project)
    assert not planner.data_ready(progress.project)
    done = planner.plan_event(progress.project, event("mock_data_provider", "completed", 3),
                              now=3)
    assert planner.data_ready(done.project)
    assert [a.kind for a in done.actions] == [ActionKind.REMOVE_SERVICES,
                                              ActionKind.DEPLOY_LEARNERS]


def test_failed_data_fails_the_project_even_with_the_aggregator_listening() -> None:
    project = built(MOCK)
    listening = planner.plan_event(project, event("aggregator", "started", 2), now=2).project
    failed = planner.plan_event(
        listening, event("mock_data_provider", "failed", 3, reason="no space"), now=3)
    assert failed.project.phase is Phase.FAILED
    assert "no space" in (failed.project.last_error or "")


def test_aggregator_listening_before_the_data_waits_for_it() -> None:
    project = built(MOCK)
    listening = planner.plan_event(project, event("aggregator", "started", 2), now=2).project
    assert listening.phase is Phase.DEPLOYING and planner.aggregator_started(listening)
    ready = planner.plan_event(listening, event("mock_data_provider", "completed", 3), now=3)
    assert ready.project.phase is Phase.TRAINING and ready.project.phase_since == 3
    assert ActionKind.DEPLOY_LEARNERS in [a.kind for a in ready.actions]


def test_data_before_the_aggregator_trains_when_it_listens() -> None:
    project = built(MOCK)
    ready = planner.plan_event(project, event("mock_data_provider", "completed", 2), now=2)
    assert ready.project.phase is Phase.DEPLOYING
    listening = planner.plan_event(ready.project, event("aggregator", "started", 3), now=3)
    assert listening.project.phase is Phase.TRAINING and listening.actions == ()


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_order_of_the_deploying_events_ends_the_same(order: tuple[int, ...]) -> None:
    """Whatever order the broker delivers them in, the same state and actions result."""
    events = [event("mock_data_provider", "started", 2),
              event("aggregator", "started", 3),
              event("mock_data_provider", "completed", 4)]
    project = built(MOCK)
    for index in order:
        project = planner.plan_event(project, events[index], now=5).project
    started_after_completed = order.index(0) > order.index(2)
    if started_after_completed:  # an older event of a finished component changes nothing
        assert project.components["mock_data_provider/mock_data_provider-0"]["state"] \
            == "completed"
    assert project.phase is Phase.TRAINING
    assert queued(project).count(ActionKind.DEPLOY_LEARNERS.value) == 1
    assert queued(project).count(ActionKind.DEPLOY_AGGREGATOR.value) == 1


def test_repeated_completion_queues_nothing_more() -> None:
    project = built(MOCK)
    completed = event("mock_data_provider", "completed", 2)
    once = planner.plan_event(project, completed, now=2).project
    twice = planner.plan_event(once, completed, now=3)
    assert twice.project == once and twice.actions == ()


def test_without_mock_data_aggregator_and_learners_start_together() -> None:
    project = built({})
    assert [k for k in queued(project) if k.startswith("deploy_")] == [
        "deploy_tracking", "deploy_aggregator", "deploy_learners"]
    assert planner.data_ready(project)
    listening = planner.plan_event(project, event("aggregator", "started", 2), now=2)
    assert listening.project.phase is Phase.TRAINING


def test_root_aggregator_counts_as_listening() -> None:
    project = built({**MOCK, "training": {"mode": "hierarchical"}})
    ready = planner.plan_event(project, event("mock_data_provider", "completed", 2), now=2)
    root = planner.plan_event(ready.project, event("root_aggregator", "started", 3), now=3)
    assert root.project.phase is Phase.TRAINING
    cluster = planner.plan_event(ready.project, event("cluster_aggregator", "started", 3), now=3)
    assert cluster.project.phase is Phase.DEPLOYING
