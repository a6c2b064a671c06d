from __future__ import annotations

from typing import Any

import pytest

from flops_contracts.events import Component, Event, EventType
from flops_manager.lifecycle import planner
from flops_manager.lifecycle.actions import ROLES_OF_KIND, Action, ActionKind, Role
from flops_manager.lifecycle.service_specs import services_of
from flops_manager.lifecycle.state import Phase, Project

PID = "p0123456789abcdef"
BUILD = ["build_image_for_trained_model"]
BUILD_DEPLOY = [*BUILD, "deploy_trained_model_image"]


def proj(phase: Phase, steps: list[str] | None = None, **kw: Any) -> Project:
    return Project(id=PID, owner="alice", spec={"post_training_steps": steps or []},
                   repository={"url": "https://x/y"}, created_at=0, updated_at=0, phase=phase,
                   phase_since=0, **kw)


def ev(component: str, event: str, ts: str = "2026-01-01T00:00:01Z", eid: str | None = None,
       **data: Any) -> Event:
    extra: dict[str, Any] = {"event_id": eid} if eid else {}
    return Event(project_id=PID, component=Component(component), instance="i0",
                 event=EventType(event), data=data, timestamp=ts, **extra)


def kinds(decision: planner.Decision) -> list[str]:
    return [a.kind.value for a in decision.actions]


CASES = [
    # (start phase, steps, event, expected phase, expected action kinds)
    (Phase.BUILDING, [], ev("builder", "completed"), Phase.DEPLOYING,
     ["remove_services", "deploy_tracking", "deploy_aggregator", "deploy_learners"]),
    (Phase.BUILDING, [], ev("builder", "failed", error="no Dockerfile"), Phase.FAILED,
     ["remove_services"]),
    (Phase.BUILDING, [], ev("builder", "lost"), Phase.FAILED, ["remove_services"]),
    (Phase.BUILDING, [], ev("aggregator", "started"), Phase.BUILDING, []),
    (Phase.DEPLOYING, [], ev("aggregator", "started"), Phase.TRAINING, []),
    (Phase.DEPLOYING, [], ev("root_aggregator", "started"), Phase.TRAINING, []),
    (Phase.DEPLOYING, [], ev("builder", "completed"), Phase.DEPLOYING, []),
    (Phase.TRAINING, [], ev("aggregator", "round_completed", round=1, metrics={"acc": 0.5}),
     Phase.TRAINING, []),
    (Phase.TRAINING, [], ev("aggregator", "completed", model_uri="models:/m/1"), Phase.COMPLETED,
     ["remove_services"]),
    (Phase.TRAINING, BUILD, ev("aggregator", "completed", model_uri="models:/m/1"),
     Phase.POST_TRAINING, ["remove_services", "deploy_tracking", "build_model_image"]),
    (Phase.TRAINING, [], ev("aggregator", "failed", error="boom"), Phase.FAILED,
     ["remove_services"]),
    (Phase.TRAINING, [], ev("aggregator", "lost"), Phase.FAILED, ["remove_services"]),
    (Phase.TRAINING, [], ev("cluster_aggregator", "failed"), Phase.FAILED, ["remove_services"]),
    (Phase.TRAINING, [], ev("learner", "learner_failed", error="no data"), Phase.TRAINING, []),
    (Phase.TRAINING, [], ev("learner", "failed"), Phase.TRAINING, []),
    (Phase.TRAINING, [], ev("learner", "lost"), Phase.TRAINING, []),
    (Phase.TRAINING, [], ev("aggregator", "log", message="hi"), Phase.TRAINING, []),
    (Phase.POST_TRAINING, BUILD, ev("builder", "completed"), Phase.COMPLETED, ["remove_services"]),
    # serving only once the inference server listens (its started event)
    (Phase.POST_TRAINING, BUILD_DEPLOY, ev("builder", "completed"), Phase.POST_TRAINING,
     ["remove_services", "deploy_tracking", "deploy_inference"]),
    (Phase.POST_TRAINING, BUILD_DEPLOY, ev("inference_server", "started"), Phase.SERVING, []),
    (Phase.POST_TRAINING, BUILD_DEPLOY, ev("inference_server", "failed", reason="no model"),
     Phase.FAILED, ["remove_services"]),
    (Phase.POST_TRAINING, BUILD, ev("builder", "failed"), Phase.FAILED, ["remove_services"]),
    (Phase.SERVING, BUILD_DEPLOY, ev("inference_server", "lost"), Phase.FAILED,
     ["remove_services"]),
    (Phase.COMPLETED, [], ev("aggregator", "failed"), Phase.COMPLETED, []),
    (Phase.FAILED, [], ev("builder", "completed"), Phase.FAILED, []),
    (Phase.CANCELLED, [], ev("aggregator", "started"), Phase.CANCELLED, []),
]


@pytest.mark.parametrize(("phase", "steps", "event", "expected", "actions"), CASES)
def test_event_table(phase: Phase, steps: list[str], event: Event, expected: Phase,
                     actions: list[str]) -> None:
    decision = planner.plan_event(proj(phase, steps), event, now=10.0)
    assert decision.project.phase is expected
    assert kinds(decision) == actions


def test_failure_reason_names_component() -> None:
    d = planner.plan_event(proj(Phase.TRAINING), ev("aggregator", "failed", error="oom"), now=1)
    assert d.project.last_error == "aggregator 'i0' failed: oom"


def test_duplicate_event_changes_nothing() -> None:
    first = planner.plan_event(proj(Phase.TRAINING), ev("learner", "learner_failed", eid="e1"),
                               now=1).project
    again = planner.plan_event(first, ev("learner", "learner_failed", eid="e1"), now=2)
    assert again.project == first


def test_out_of_order_round_is_ignored() -> None:
    p = planner.plan_event(proj(Phase.TRAINING), ev("aggregator", "round_completed", round=2,
                                                    metrics={"acc": 0.9}), now=1).project
    late = planner.plan_event(p, ev("aggregator", "round_completed", ts="2026-01-01T00:00:02Z",
                                    round=1, metrics={"acc": 0.1}), now=2)
    assert late.project.round == 2 and late.project.metrics == {"acc": 0.9}


def test_older_component_event_is_ignored() -> None:
    p = planner.plan_event(proj(Phase.TRAINING), ev("learner", "started",
                                                    ts="2026-01-01T00:00:05Z"), now=1).project
    old = planner.plan_event(p, ev("learner", "failed", ts="2026-01-01T00:00:01Z"), now=2)
    assert old.project == p


def test_completed_records_model() -> None:
    d = planner.plan_event(proj(Phase.TRAINING), ev(
        "aggregator", "completed", model_uri="models:/m/1", registered_model="m",
        model_version=1, mlflow_run_id="r1", registry_uri="http://r"), now=1)
    assert d.project.model == {"model_uri": "models:/m/1", "registered_model": "m",
                               "model_version": 1, "mlflow_run_id": "r1",
                               "registry_uri": "http://r"}


def test_round_in_deploying_moves_to_training() -> None:
    d = planner.plan_event(proj(Phase.DEPLOYING), ev("aggregator", "round_completed", round=1),
                           now=1)
    assert d.project.phase is Phase.TRAINING and d.project.round == 1


@pytest.mark.parametrize(("phase", "elapsed", "expected"), [
    (Phase.BUILDING, 5, Phase.BUILDING), (Phase.BUILDING, 11, Phase.FAILED),
    (Phase.DEPLOYING, 21, Phase.FAILED), (Phase.TRAINING, 29, Phase.TRAINING),
    (Phase.TRAINING, 31, Phase.FAILED), (Phase.SERVING, 10_000, Phase.SERVING),
    (Phase.COMPLETED, 10_000, Phase.COMPLETED),
])
def test_timeouts(phase: Phase, elapsed: float, expected: Phase) -> None:
    timeouts = {Phase.BUILDING: 10.0, Phase.DEPLOYING: 20.0, Phase.TRAINING: 30.0}
    d = planner.plan_tick(proj(phase), now=elapsed, timeouts=timeouts)
    assert d.project.phase is expected
    if expected is Phase.FAILED:
        assert f"phase '{phase.value}'" in (d.project.last_error or "")


def test_submitted_tick_starts_build() -> None:
    d = planner.plan_tick(proj(Phase.SUBMITTED), now=1, timeouts={})
    assert d.project.phase is Phase.BUILDING and kinds(d) == ["build_images"]
    action = Action.from_dict(d.project.pending[0].action)
    assert services_of(d.project, ROLES_OF_KIND[action.kind]) == [f"{PID}-builder"]


def test_cancel_drops_pending_creations() -> None:
    p = planner.plan_event(proj(Phase.BUILDING), ev("builder", "completed"), now=1).project
    d = planner.plan_cancel(p, now=2)
    assert d.project.phase is Phase.CANCELLED
    assert {x.action["kind"] for x in d.project.pending} == {"remove_services"}


def test_delete_queues_cleanup_then_delete() -> None:
    d = planner.plan_delete(proj(Phase.COMPLETED), now=1)
    assert d.project.deleting
    assert [x.action["kind"] for x in d.project.pending] == ["remove_services", "delete_project"]


def test_action_names_are_deterministic() -> None:
    a = Action(ActionKind.REMOVE_SERVICES, PID, (Role.AGGREGATOR, Role.LEARNERS))
    assert services_of(proj(Phase.TRAINING), a.roles) == [f"{PID}-aggregator", f"{PID}-learners"]
    assert Action.from_dict(a.to_dict()) == a


def test_hierarchical_services_are_named_per_cluster() -> None:
    p = Project(id=PID, owner="alice", spec={"training": {"mode": "hierarchical", "cycles": 2}},
                repository={"url": "https://x/y"}, created_at=0, updated_at=0,
                clusters=("edge-a", "edge-b"))
    roles = (Role.AGGREGATOR, Role.CLUSTER_AGGREGATOR, Role.LEARNERS)
    assert services_of(p, roles) == [
        f"{PID}-aggregator", f"{PID}-cluster-aggregator-0", f"{PID}-cluster-aggregator-1",
        f"{PID}-learners-0", f"{PID}-learners-1",
    ]


def test_builder_result_is_kept_and_mock_data_comes_first() -> None:
    placed = ({"learner": 0, "node": "n0", "cluster": "local", "rows": 0,
               "label_histogram": {}, "location": "grpc://h:0"},)
    p = proj(Phase.BUILDING, placement=placed).replace(
        spec={"mock_data": {"partitioner": "dirichlet"}})
    built = ev("builder", "completed", env_dir="/envs/a", repo_dir="/src/a", commit="abc",
               cache_hit=True, python="/envs/a/bin/python", secret="not kept")
    d = planner.plan_event(p, built, now=1)
    assert d.project.phase is Phase.DEPLOYING
    assert kinds(d) == ["remove_services", "deploy_data"]
    assert d.project.build == {"env_dir": "/envs/a", "repo_dir": "/src/a", "commit": "abc",
                               "cache_hit": True, "python": "/envs/a/bin/python"}
    failed = ev("mock_data_provider", "failed", ts="2026-01-01T00:00:03Z", reason="no space")
    d3 = planner.plan_event(d.project, failed, now=3)
    assert d3.project.phase is Phase.FAILED and "no space" in (d3.project.last_error or "")


def test_mock_data_on_nodes_starts_training_once_every_nodes_provider_reported() -> None:
    placed = tuple({"learner": i, "node": f"n{i}", "cluster": "local", "rows": 0,
                    "label_histogram": {}, "location": f"grpc://h:{i}"} for i in range(2))
    p = proj(Phase.BUILDING, placement=placed).replace(
        spec={"mock_data": {"partitioner": "iid"}})
    d = planner.plan_event(p, ev("builder", "completed"), now=1)
    # the aggregator waits for the data: it records each learner's rows and labels
    assert kinds(d) == ["remove_services", "deploy_data"]

    def provider(index: int, ts: str) -> Event:
        report = {"index": index, "rows": 10 + index, "label_histogram": {"0": 4, "1": 6 + index}}
        return Event(project_id=PID, component=Component.MOCK_DATA_PROVIDER,
                     instance=f"{PID}-mock-data-provider-{index}-0", event=EventType.COMPLETED,
                     data={"partitions": [report]}, timestamp=ts)

    one = planner.plan_event(d.project, provider(1, "2026-01-01T00:00:02Z"), now=2)
    assert one.actions == () and one.project.phase is Phase.DEPLOYING
    assert [e["rows"] for e in one.project.placement] == [0, 11]
    both = planner.plan_event(one.project, provider(0, "2026-01-01T00:00:03Z"), now=3)
    assert kinds(both) == ["remove_services", "deploy_tracking", "deploy_aggregator",
                           "deploy_learners"]
    assert [(e["rows"], e["label_histogram"]) for e in both.project.placement] == [
        (10, {"0": 4, "1": 6}), (11, {"0": 4, "1": 7})]
    assert both.project.phase is Phase.DEPLOYING  # until the aggregator listens
    started = planner.plan_event(both.project, ev("aggregator", "started"), now=4)
    assert started.project.phase is Phase.TRAINING


def test_failed_services_fail_the_project_only_when_needed() -> None:
    building = proj(Phase.BUILDING)
    d = planner.plan_observation(building, {Role.BUILDER: "exit 1: repo has no model"}, now=5)
    assert d.project.phase is Phase.FAILED
    assert d.project.last_error == "builder failed: exit 1: repo has no model"
    training = proj(Phase.TRAINING)
    assert planner.plan_observation(training, {Role.LEARNERS: "exit 34"}, now=5).project \
        is training  # learners may fail; the aggregator decides
    assert planner.plan_observation(training, {Role.AGGREGATOR: "exit 1"},
                                    now=5).project.phase is Phase.FAILED
    done = proj(Phase.COMPLETED)
    assert planner.plan_observation(done, {Role.AGGREGATOR: "x"}, now=5).project is done


def test_model_built_serves_or_completes() -> None:
    serve = planner.model_built(proj(Phase.POST_TRAINING, BUILD_DEPLOY), now=3)
    assert serve.project.phase is Phase.POST_TRAINING  # until the server reports started
    assert kinds(serve) == ["remove_services", "deploy_tracking", "deploy_inference"]
    done = planner.model_built(proj(Phase.POST_TRAINING, BUILD), now=3)
    assert done.project.phase is Phase.COMPLETED


def test_aggregator_payloads_drive_progress_and_model() -> None:
    """The planner reads exactly what the aggregator publishes (one shared payload builder)."""
    from flops_contracts.events import training_data

    rnd = ev("aggregator", "round_completed", **training_data(
        round=2, total_rounds=5, metrics={"loss": 0.3, "accuracy": 0.9}, answered=3))
    p = planner.plan_event(proj(Phase.TRAINING), rnd, now=1).project
    assert (p.round, p.total_rounds, p.metrics) == (2, 5, {"loss": 0.3, "accuracy": 0.9})
    done = ev("aggregator", "completed", ts="2026-01-01T00:00:02Z", **training_data(
        total_rounds=5, metrics={"loss": 0.2, "accuracy": 0.95}, model_uri="models:/m/1"))
    d = planner.plan_event(p, done, now=2)
    assert d.project.phase is Phase.COMPLETED
    assert d.project.metrics == {"loss": 0.2, "accuracy": 0.95}
    assert d.project.model == {"model_uri": "models:/m/1"}
