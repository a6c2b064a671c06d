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
NODES = tuple({"learner": i, "node": f"n{i}", "cluster": "local", "rows": 0,
               "label_histogram": {}, "location": f"grpc://h:{i}"} for i in range(2))
"""Where a mock data project's two learners were placed at submission."""


def built(spec: dict[str, Any]) -> Project:
    """A project whose builder just completed (the decision's project); mock data is placed
    on two nodes, as every mock data project is."""
    project = Project(id=PID, owner="alice", spec=spec, repository={"url": "https://x/y"},
                      created_at=0, updated_at=0, phase=Phase.BUILDING, phase_since=0,
                      placement=NODES if "mock_data" in spec else ())
    return planner.plan_event(project, event("builder", "completed", 1, env_dir="/e"),
                              now=1).project


def event(component: str, what: str, second: int, instance: int = 0, **data: Any) -> Event:
    return Event(project_id=PID, component=Component(component),
                 instance=f"{component}-{instance}",
                 event=EventType(what), data=data, timestamp=f"2026-01-01T00:00:{second:02d}Z",
                 event_id=f"{component}-{instance}-{what}-{second}")


def queued(project: Project) -> list[str]:
    return [p.action["kind"] for p in project.pending]


def provider(what: str, second: int, node: int, **data: Any) -> Event:
    """An event of node ``node``'s mock data provider."""
    return event("mock_data_provider", what, second, instance=node, **data)


def test_the_nodes_data_is_deployed_alone_first() -> None:
    project = built(MOCK)
    assert project.phase is Phase.DEPLOYING
    assert [k for k in queued(project) if k.startswith("deploy_")] == ["deploy_data"]
    assert not planner.data_ready(project)


def test_aggregator_and_learners_start_when_every_nodes_data_is_complete() -> None:
    project = built(MOCK)
    progress = planner.plan_event(project, provider("started", 2, 0), now=2)
    one = planner.plan_event(progress.project, provider("completed", 3, 0), now=3)
    assert one.actions == () and not planner.data_ready(one.project)
    done = planner.plan_event(one.project, provider("completed", 4, 1), now=4)
    assert planner.data_ready(done.project) and done.project.phase is Phase.DEPLOYING
    assert [a.kind for a in done.actions] == [
        ActionKind.REMOVE_SERVICES, ActionKind.DEPLOY_TRACKING, ActionKind.DEPLOY_AGGREGATOR,
        ActionKind.DEPLOY_LEARNERS]
    listening = planner.plan_event(done.project, event("aggregator", "started", 5), now=5)
    assert listening.project.phase is Phase.TRAINING and listening.project.phase_since == 5


def test_failed_data_on_one_node_fails_the_project() -> None:
    project = built(MOCK)
    one = planner.plan_event(project, provider("completed", 2, 0), now=2).project
    failed = planner.plan_event(one, provider("failed", 3, 1, reason="no space"), now=3)
    assert failed.project.phase is Phase.FAILED
    assert "no space" in (failed.project.last_error or "")


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_order_of_the_deploying_events_ends_the_same(order: tuple[int, ...]) -> None:
    """Whatever order the broker delivers them in, the same state and actions result."""
    events = [provider("started", 2, 0), provider("completed", 3, 1),
              event("aggregator", "started", 4), provider("completed", 5, 0)]
    project = built(MOCK)
    for index in order:
        project = planner.plan_event(project, events[index], now=6).project
    if order.index(0) > order.index(3):  # an older event of a finished component changes nothing
        assert project.components["mock_data_provider/mock_data_provider-0"]["state"] \
            == "completed"
    assert project.phase is Phase.TRAINING
    assert queued(project).count(ActionKind.DEPLOY_LEARNERS.value) == 1
    assert queued(project).count(ActionKind.DEPLOY_AGGREGATOR.value) == 1


def test_repeated_completion_queues_nothing_more() -> None:
    project = built(MOCK)
    once = planner.plan_event(project, provider("completed", 2, 0), now=2).project
    twice = planner.plan_event(once, provider("completed", 2, 0), now=3)
    assert twice.project == once and twice.actions == ()
    both = planner.plan_event(once, provider("completed", 4, 1), now=4).project
    again = planner.plan_event(both, provider("completed", 4, 1), now=5)
    assert again.project == both and again.actions == ()


def test_without_mock_data_aggregator_and_learners_start_together() -> None:
    project = built({})
    assert [k for k in queued(project) if k.startswith("deploy_")] == [
        "deploy_tracking", "deploy_aggregator", "deploy_learners"]
    assert planner.data_ready(project)
    listening = planner.plan_event(project, event("aggregator", "started", 2), now=2)
    assert listening.project.phase is Phase.TRAINING


def test_root_aggregator_counts_as_listening() -> None:
    project = built({**MOCK, "training": {"mode": "hierarchical"}})
    one = planner.plan_event(project, provider("completed", 2, 0), now=2)
    ready = planner.plan_event(one.project, provider("completed", 2, 1), now=2)
    root = planner.plan_event(ready.project, event("root_aggregator", "started", 3), now=3)
    assert root.project.phase is Phase.TRAINING
    cluster = planner.plan_event(ready.project, event("cluster_aggregator", "started", 3), now=3)
    assert cluster.project.phase is Phase.DEPLOYING
