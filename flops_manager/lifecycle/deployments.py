"""Inference deployments a user asked for through the API, reconciled like project services.

The API only records the desired deployment (a :class:`ServiceRecord` with ``desired``
``present``, state ``requested``) or asks for its removal (``desired`` ``absent``). The reconcile
worker reads those records and takes the next idempotent step: create the service (named after
the record, so repeating is harmless), remove it and then forget the record, or record why it
cannot be created. A failure is thus kept on the deployment with its reason; nothing is created
without a record that names it.

:func:`plan_deployment` decides (pure); :class:`DeploymentReconciler` carries the steps out.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable

from flops_contracts.errors import FlopsError
from flops_manager.lifecycle import planner
from flops_manager.lifecycle.actions import Role
from flops_manager.lifecycle.placement import ensure_tracking_server, placement
from flops_manager.lifecycle.service_specs import (
    inference_spec,
    with_broker_login,
    with_tracking_login,
)
from flops_manager.lifecycle.state import Project
from flops_manager.ports.errors import NotFoundError, TemporaryError
from flops_manager.ports.orchestrator import Orchestrator, ServiceSpec
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import ABSENT, REQUESTED, ServiceRecord
from flops_manager.services.clock import Clock, system_clock
from flops_manager.settings import Settings

log = logging.getLogger(__name__)

KIND = Role.INFERENCE_SERVER.value
FAILED = "failed"


class Step(enum.StrEnum):
    """The next thing to do for a deployment."""

    CREATE = "create"
    REMOVE = "remove"
    FAIL = "fail"
    WAIT = "wait"
    NOTHING = "nothing"


@dataclasses.dataclass(frozen=True)
class DeploymentPlan:
    """A step and, for ``fail``, the reason."""

    step: Step
    reason: str | None = None


def model_problem(project: Project, model_uri: str) -> str | None:
    """Why ``model_uri`` cannot be served for ``project`` (``None`` if it can)."""
    model = project.model or {}
    if not (model.get("registry_uri") or model.get("model_uri")):
        return f"project {project.id} has no trained model yet"
    if model_uri not in (model.get("registry_uri"), model.get("model_uri")):
        return f"model {model_uri!r} does not belong to project {project.id}"
    return None


def plan_deployment(
    record: ServiceRecord, project: Project | None, *, now: float
) -> DeploymentPlan:
    """Decide the next step for ``record`` (``project``: its project, ``None`` if gone)."""
    if record.desired == ABSENT or project is None or project.deleting:
        return DeploymentPlan(Step.REMOVE)
    if record.state != REQUESTED:
        return DeploymentPlan(Step.NOTHING)
    problem = model_problem(project, str(record.request.get("model_uri")))
    if problem:
        return DeploymentPlan(Step.FAIL, problem)
    if record.retry_at > now:
        return DeploymentPlan(Step.WAIT)
    return DeploymentPlan(Step.CREATE)


def after_failure(
    record: ServiceRecord, reason: str, *, temporary: bool, now: float, settings: Settings
) -> ServiceRecord:
    """The record after a failed try: retried later (with backoff) or failed for good."""
    attempts = record.attempts + 1
    if temporary and attempts < settings.action_max_attempts:
        delay = planner.retry_delay(attempts, settings.action_backoff_s)
        return record.replace(attempts=attempts, retry_at=now + delay,
                              message=f"retrying in {delay:g} s: {reason}")
    if temporary:
        reason = f"gave up after {attempts} attempts: {reason}"
    return record.replace(attempts=attempts, state=FAILED, message=reason)


@dataclasses.dataclass(frozen=True)
class DeploymentReconciler:
    """Takes each deployment record that needs work one step closer to its desired state."""

    store: ProjectStore
    orchestrator: Orchestrator
    settings: Settings
    clock: Clock = system_clock
    seal: Callable[[ServiceSpec], ServiceSpec] = lambda spec: spec
    """Hands a deployment its credentials (``Enrollment.seal_standalone``)."""
    unseal: Callable[[str, str], object] = lambda project_id, service: None
    """Revokes them: (project id, service name) (``Enrollment.revoke``)."""

    def tick(self) -> int:
        """Reconcile every deployment that needs work once; return how many steps ran."""
        ran = 0
        for record in self.store.list_service_records_needing_work(kinds={KIND}):
            try:
                ran += self.reconcile(record)
            except FlopsError as exc:  # the store or the backend: the next pass retries
                log.warning("deployment %s: %s", record.id, exc.message)
            except Exception:
                log.exception("reconciling deployment %s failed", record.id)
        return ran

    def _project(self, record: ServiceRecord) -> Project | None:
        try:
            return self.store.get_project(str(record.project_id), owner=record.owner)
        except NotFoundError:
            return None

    def reconcile(self, record: ServiceRecord) -> int:
        """Take the next step for ``record``; return 1 if it did something, else 0."""
        project = self._project(record)
        plan = plan_deployment(record, project, now=self.clock())
        if plan.step is Step.REMOVE:
            self.orchestrator.remove_service(record.name)
            if record.project_id is not None:
                self.unseal(str(record.project_id), record.name)
            self.store.delete_service_record(record.id)
        elif plan.step is Step.FAIL:
            self.store.observe_service_record(
                record.replace(state=FAILED, message=plan.reason))
        elif plan.step is Step.CREATE and project is not None:
            self.store.observe_service_record(self._create(record, project))
        else:
            return 0
        return 1

    def _create(self, record: ServiceRecord, project: Project) -> ServiceRecord:
        """Create the record's inference server; return the record as observed after it."""
        try:
            ensure_tracking_server(self.orchestrator, self.settings)
            place = placement(self.orchestrator, self.settings, project, tracking=True)
            spec = self.seal(with_tracking_login(with_broker_login(inference_spec(
                project, self.settings, place, model_uri=str(record.request["model_uri"]),
                name=record.name, instances=int(record.request.get("instances", 1)),
            ), self.settings), self.settings))
            status = self.orchestrator.create_service(spec)
            address = self.orchestrator.public_url(spec.name)
        except TemporaryError as exc:
            return after_failure(record, exc.message, temporary=True, now=self.clock(),
                                 settings=self.settings)
        except FlopsError as exc:
            return after_failure(record, exc.message, temporary=False, now=self.clock(),
                                 settings=self.settings)
        except Exception as exc:
            log.exception("creating deployment %s failed", record.id)
            return after_failure(record, f"{type(exc).__name__}: {exc}", temporary=False,
                                 now=self.clock(), settings=self.settings)
        return record.replace(state=status.state.value, address=address, message=None,
                              attempts=0, retry_at=0.0)
