"""Drift: services removed behind FLOps' back are recreated or fail their project.

The decision (:func:`drift.plan_drift`) is tested as a pure function; the worker against the
in-memory orchestrator, whose services a test removes directly (no servers).
"""

from __future__ import annotations

from typing import Any

import pytest

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.lifecycle import actions as act
from flops_manager.lifecycle import drift
from flops_manager.lifecycle.actions import Action, ActionKind, Role, service_name
from flops_manager.lifecycle.planner import queue
from flops_manager.lifecycle.state import Phase, Project, ServiceWatch
from flops_manager.lifecycle.worker import ReconcileWorker
from tests.manager.conftest import make_settings
from tests.manager.test_worker import Clock

PID = "p0123456789abcdef"
POLICY = drift.DriftPolicy(grace_s=10.0, max_repairs=2)
LEARNERS = service_name(PID, Role.LEARNERS)
AGGREGATOR = service_name(PID, Role.AGGREGATOR)


def proj(phase: Phase, *roles: Role, **kw: Any) -> Project:
    project = Project(id=PID, owner="alice", spec={}, repository={"url": "https://x/y"},
                      created_at=0, updated_at=0, phase=phase, phase_since=0, **kw)
    return drift.record_created(project, roles)


def kinds(decision: Any) -> list[ActionKind]:
    return [a.kind for a in decision.actions]


def test_created_and_removed_roles_are_the_desired_state() -> None:
    p = proj(Phase.TRAINING, Role.AGGREGATOR, Role.LEARNERS)
    assert drift.watched(p) == (Role.AGGREGATOR, Role.LEARNERS)
    assert drift.watched(drift.record_removed(p, (Role.LEARNERS,))) == (Role.AGGREGATOR,)
    # a pending action on a role means its absence is expected
    removing = queue(p, (act.remove_services(PID, Role.LEARNERS),))
    assert drift.watched(removing) == (Role.AGGREGATOR,)
    redeploying = queue(p, (Action(ActionKind.DEPLOY_LEARNERS, PID),))
    assert drift.watched(redeploying) == (Role.AGGREGATOR,)
    assert drift.watched(p.replace(phase=Phase.FAILED)) == ()
    assert Project.from_doc(p.to_doc()).services == p.services


def test_a_missing_learner_is_recreated_after_the_grace_period() -> None:
    p = proj(Phase.TRAINING, Role.AGGREGATOR, Role.LEARNERS)
    gone = {Role.AGGREGATOR: (), Role.LEARNERS: (f"{LEARNERS}-1",)}
    first = drift.plan_drift(p, gone, now=100, policy=POLICY)
    assert not first.actions and first.project.services["learners"].missing_since == 100
    waiting = drift.plan_drift(first.project, gone, now=109, policy=POLICY)
    assert waiting.project == first.project
    repaired = drift.plan_drift(first.project, gone, now=110, policy=POLICY)
    assert kinds(repaired) == [ActionKind.DEPLOY_LEARNERS]
    assert repaired.project.phase is Phase.TRAINING
    assert repaired.project.services["learners"] == ServiceWatch(missing_since=None, repairs=1)
    # the recreated learners exist again: the record is kept (with its repair count)
    back = drift.record_created(repaired.project, (Role.LEARNERS,))
    assert back.services["learners"].repairs == 1


def test_back_before_the_grace_period_clears_the_record() -> None:
    p = proj(Phase.TRAINING, Role.LEARNERS)
    seen = drift.plan_drift(p, {Role.LEARNERS: (LEARNERS,)}, now=1, policy=POLICY).project
    assert drift.plan_drift(seen, {Role.LEARNERS: ()}, now=2, policy=POLICY).project == p


def test_an_unobservable_role_keeps_its_record() -> None:
    p = proj(Phase.TRAINING, Role.LEARNERS)
    seen = drift.plan_drift(p, {Role.LEARNERS: (LEARNERS,)}, now=1, policy=POLICY).project
    assert drift.plan_drift(seen, {}, now=100, policy=POLICY).project == seen


def test_a_missing_aggregator_fails_the_project_naming_it() -> None:
    p = proj(Phase.TRAINING, Role.AGGREGATOR, Role.LEARNERS)
    gone = {Role.AGGREGATOR: (AGGREGATOR,), Role.LEARNERS: ()}
    seen = drift.plan_drift(p, gone, now=0, policy=POLICY).project
    failed = drift.plan_drift(seen, gone, now=10, policy=POLICY)
    assert failed.project.phase is Phase.FAILED
    assert kinds(failed) == [ActionKind.REMOVE_SERVICES]
    assert AGGREGATOR in (failed.project.last_error or "")
    assert "cannot be recreated" in (failed.project.last_error or "")


def test_repairs_are_bounded() -> None:
    p = proj(Phase.TRAINING, Role.LEARNERS).replace(
        services={"learners": ServiceWatch(missing_since=0.0, repairs=POLICY.max_repairs)})
    failed = drift.plan_drift(p, {Role.LEARNERS: (LEARNERS,)}, now=10, policy=POLICY)
    assert failed.project.phase is Phase.FAILED
    assert "recreated 2 times already" in (failed.project.last_error or "")


@pytest.mark.parametrize(("phase", "role", "kind"), [
    (Phase.BUILDING, Role.BUILDER, ActionKind.BUILD_IMAGES),
    (Phase.POST_TRAINING, Role.MODEL_BUILDER, ActionKind.BUILD_MODEL_IMAGE),
    (Phase.SERVING, Role.INFERENCE_SERVER, ActionKind.DEPLOY_INFERENCE),
])
def test_one_shot_and_stateless_services_are_redone_ignoring_the_old_instance(
        phase: Phase, role: Role, kind: ActionKind) -> None:
    p = proj(phase, role)
    gone = {role: (service_name(PID, role),)}
    seen = drift.plan_drift(p, gone, now=0, policy=POLICY).project
    redo = drift.plan_drift(seen, gone, now=10, policy=POLICY)
    assert kinds(redo) == [kind] and redo.project.phase is phase
    marks = [v for v in redo.project.components.values() if v["state"] == "restarted"]
    assert len(marks) == 1  # events of the removed instance (its last will) are older


@pytest.mark.parametrize("role", [Role.DATA_SERVER, Role.MOCK_DATA_PROVIDER])
def test_data_services_are_not_recreated(role: Role) -> None:
    p = proj(Phase.DEPLOYING, role)
    gone = {role: (service_name(PID, role),)}
    seen = drift.plan_drift(p, gone, now=0, policy=POLICY).project
    assert drift.plan_drift(seen, gone, now=10, policy=POLICY).project.phase is Phase.FAILED


# -- the worker, against the in-memory orchestrator ---------------------------------------


def _worker(**overrides: Any) -> tuple[MemoryProjectStore, MemoryOrchestrator, ReconcileWorker,
                                       Clock]:
    store, orch, clock = MemoryProjectStore(), MemoryOrchestrator(), Clock()
    settings = make_settings(drift_grace_s=10.0, **overrides)
    return store, orch, ReconcileWorker(store, orch, settings, clock=clock), clock


def test_worker_recreates_a_builder_removed_behind_its_back() -> None:
    from flops_manager.services.projects import ProjectService

    store, orch, worker, clock = _worker()
    pid = ProjectService(store, allow_local_repos=True, clock=clock).create(
        owner="alice", spec={}, repository={"url": "https://h/u/r"}).id
    worker.tick()
    builder = service_name(pid, Role.BUILDER)
    assert builder in orch.services and "builder" in store.get_project(pid).services
    del orch.services[builder]  # removed outside FLOps
    worker.tick()
    assert store.get_project(pid).services["builder"].missing_since == clock.now
    assert builder not in orch.services
    clock.now += 10
    worker.tick()  # queues the build again and runs it in the same pass
    assert orch.created.count(builder) == 2 and store.get_project(pid).phase is Phase.BUILDING
    assert store.get_project(pid).services["builder"] == ServiceWatch(None, 1)


def test_worker_fails_a_training_project_whose_aggregator_disappeared() -> None:
    store, orch, worker, clock = _worker()
    project = proj(Phase.TRAINING, Role.AGGREGATOR, Role.LEARNERS).replace(
        spec={"name": "d"}, created_at=clock.now, updated_at=clock.now, phase_since=clock.now)
    store.create_project(project)
    for name in (AGGREGATOR, LEARNERS):
        orch.services[name] = orch_spec(name)
    worker.tick()
    assert store.get_project(PID).phase is Phase.TRAINING
    del orch.services[AGGREGATOR]
    worker.tick()
    clock.now += 10
    worker.tick()  # fails, then removes what is left
    failed = store.get_project(PID)
    assert failed.phase is Phase.FAILED and AGGREGATOR in (failed.last_error or "")
    assert not orch.services


def orch_spec(name: str) -> Any:
    from flops_manager.ports.orchestrator import ServiceSpec

    return ServiceSpec(name=name, role="x", image="i", project_id=PID)
