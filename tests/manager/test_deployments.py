"""Inference deployments go through the reconciler: the request records, the worker creates.

Faults: the backend fails while the server is created (temporarily, then for good), the user
removes a deployment whose creation failed, the project disappears. Stated outcomes: nothing
is created inside the request, failures are kept on the deployment with their reason, every
service ever created is named by a record until it is removed (no orphans), and the shared
tracking server is created by its own planner action, never as a side effect of placement.
"""

from __future__ import annotations

import pytest

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.lifecycle import planner
from flops_manager.lifecycle.actions import Action, ActionKind
from flops_manager.lifecycle.deployments import (
    DeploymentReconciler,
    Step,
    plan_deployment,
)
from flops_manager.lifecycle.placement import placement
from flops_manager.lifecycle.service_specs import TRACKING_SERVICE
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.lifecycle.worker import ReconcileWorker
from flops_manager.ports.errors import InvalidTransitionError, PermanentError, TemporaryError
from flops_manager.ports.orchestrator import ServiceSpec, ServiceStatus
from flops_manager.ports.records import ABSENT, ServiceRecord
from flops_manager.services.models import ModelService
from flops_manager.services.projects import ProjectService
from tests.manager.conftest import make_settings
from tests.manager.test_worker import Clock

MODEL = {"model_uri": "runs:/r1/model", "registry_uri": "models:/m/1"}


class BrokenInference(MemoryOrchestrator):
    """Refuses inference servers: ``permanent`` times for good, or as ``fail_next`` says."""

    def __init__(self, permanent: int = 0) -> None:
        super().__init__()
        self.permanent = permanent

    def create_service(self, spec: ServiceSpec) -> ServiceStatus:
        if spec.role == "inference_server" and self.permanent > 0:
            self.permanent -= 1
            raise PermanentError("image flops/x-inference_server:latest not found")
        return super().create_service(spec)


class World:
    def __init__(self, orchestrator: MemoryOrchestrator | None = None, **settings: object):
        self.store = MemoryProjectStore()
        self.orchestrator = orchestrator or MemoryOrchestrator()
        self.clock = Clock()
        self.settings = make_settings(action_backoff_s=5.0, action_max_attempts=3, **settings)
        projects = ProjectService(self.store, allow_local_repos=True, clock=self.clock)
        created = projects.create(owner="alice", spec={}, repository={"url": "https://h/u/r"})
        self.pid = created.id
        self.store.save_project(created.replace(phase=Phase.COMPLETED, model=MODEL),
                                expected_version=created.version)
        self.models = ModelService(self.store, projects, clock=self.clock)
        self.reconciler = DeploymentReconciler(self.store, self.orchestrator, self.settings,
                                               clock=self.clock)

    def deploy(self) -> ServiceRecord:
        return self.models.deploy(self.pid, owner="alice", model_uri=None, instances=1)

    def record(self, record: ServiceRecord) -> ServiceRecord:
        return self.store.get_service_record(record.id, owner="alice", kind=record.kind)

    def orphans(self) -> set[str]:
        """Inference servers that no deployment record names."""
        named = {r.name for r in self.store.list_service_records(owner="alice",
                                                                 kind="inference_server")}
        running = {name for name, spec in self.orchestrator.services.items()
                   if spec.role == "inference_server"}
        return running - named


def test_the_request_only_records_and_the_reconciler_creates() -> None:
    world = World()
    record = world.deploy()
    assert record.state == "requested" and not world.orchestrator.services
    assert world.reconciler.tick() == 1
    done = world.record(record)
    assert done.state == "running" and done.name in world.orchestrator.services
    assert TRACKING_SERVICE in world.orchestrator.services
    assert world.reconciler.tick() == 0  # level-triggered: nothing left to do
    with pytest.raises(InvalidTransitionError, match="does not belong"):
        world.models.deploy(world.pid, owner="alice", model_uri="models:/other/1", instances=1)


def test_temporary_failures_are_retried_with_backoff_then_recorded() -> None:
    world = World()
    record = world.deploy()
    world.orchestrator.fail_next = 1
    world.reconciler.tick()
    waiting = world.record(record)
    assert waiting.state == "requested" and waiting.attempts == 1
    assert "retrying" in (waiting.message or "") and waiting.retry_at == world.clock.now + 5
    assert world.reconciler.tick() == 0  # not before retry_at
    world.clock.now += 5.1
    world.reconciler.tick()
    assert world.record(record).state == "running"
    again = world.deploy()
    world.orchestrator.fail_next = 100
    for _ in range(3):
        world.clock.now += 60
        world.reconciler.tick()
    failed = world.record(again)
    assert failed.state == "failed" and "gave up after 3 attempts" in (failed.message or "")
    assert not world.orphans()


def test_a_permanent_failure_is_kept_with_its_reason_and_removal_cleans_up() -> None:
    world = World(BrokenInference(permanent=1))
    record = world.deploy()
    world.reconciler.tick()
    failed = world.record(record)
    assert failed.state == "failed" and "not found" in (failed.message or "")
    listed = world.models.list_deployments(world.pid, owner="alice")
    assert [(d.id, d.state) for d in listed] == [(record.id, "failed")]
    assert world.reconciler.tick() == 0  # a failed deployment is not retried by itself
    world.models.undeploy(world.pid, record.id, owner="alice")
    assert world.models.list_deployments(world.pid, owner="alice") == []
    world.reconciler.tick()
    assert world.store.list_service_records(owner="alice", kind="inference_server") == []
    assert not world.orphans()


def test_removal_requested_before_creation_never_creates() -> None:
    world = World()
    record = world.deploy()
    world.models.undeploy(world.pid, record.id, owner="alice")
    world.reconciler.tick()
    assert not world.orchestrator.services
    assert world.store.list_service_records(owner="alice", kind="inference_server") == []


def test_deployments_of_a_deleted_project_are_removed() -> None:
    world = World()
    running = world.deploy()
    worker = ReconcileWorker(world.store, world.orchestrator, world.settings, clock=world.clock)
    worker.tick()
    requested = world.deploy()  # not created yet when the project is deleted
    ProjectService(world.store, allow_local_repos=True, clock=world.clock).delete(
        world.pid, owner="alice")
    worker.tick()
    worker.tick()
    assert {running.name, requested.name}.isdisjoint(world.orchestrator.services)
    assert world.store.list_service_records(owner="alice", kind="inference_server") == []


def test_plan_deployment_is_pure() -> None:
    project = Project(id="p", owner="alice", spec={}, repository={}, created_at=0,
                      updated_at=0, model=MODEL)
    record = ServiceRecord("d", "alice", "inference_server", "p-serve-d",
                           {"model_uri": "models:/m/1"}, 0.0, "p")
    assert plan_deployment(record, project, now=0).step is Step.CREATE
    assert plan_deployment(record.replace(retry_at=5), project, now=1).step is Step.WAIT
    assert plan_deployment(record.replace(state="running"), project, now=0).step is Step.NOTHING
    assert plan_deployment(record.replace(desired=ABSENT), project, now=0).step is Step.REMOVE
    assert plan_deployment(record, None, now=0).step is Step.REMOVE
    no_model = plan_deployment(record, project.replace(model=None), now=0)
    assert no_model.step is Step.FAIL and "no trained model" in (no_model.reason or "")


def test_tracking_server_is_a_planner_action_not_a_side_effect_of_placement() -> None:
    world = World()
    project = world.store.get_project(world.pid)
    with pytest.raises(TemporaryError, match=TRACKING_SERVICE):
        placement(world.orchestrator, world.settings, project, tracking=True)
    assert TRACKING_SERVICE not in world.orchestrator.services  # placement only reads
    decision = planner.model_built(project.replace(
        phase=Phase.POST_TRAINING,
        spec={"post_training_steps": ["build_image_for_trained_model",
                                      "deploy_trained_model_image"]}), now=1)
    kinds = [Action.from_dict(p.action).kind for p in decision.project.pending]
    assert kinds.index(ActionKind.DEPLOY_TRACKING) < kinds.index(ActionKind.DEPLOY_INFERENCE)
    configured = make_settings(tracking_uri="http://mlflow:5000")
    assert placement(world.orchestrator, configured, project,
                     tracking=True).tracking_uri == "http://mlflow:5000"


def test_one_deployment_that_cannot_be_removed_does_not_stop_the_others() -> None:
    class StuckRemoval(MemoryOrchestrator):
        def remove_service(self, name: str) -> bool:
            raise PermanentError(f"{name} is stuck")

    world = World(StuckRemoval())
    stuck = world.deploy()
    world.models.undeploy(world.pid, stuck.id, owner="alice")
    wanted = world.deploy()
    world.reconciler.tick()
    assert world.record(wanted).state == "running"
    assert world.record(stuck).desired == ABSENT  # kept, and tried again on the next pass
