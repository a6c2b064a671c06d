"""The reconcile worker: a thread that applies planned actions through the Orchestrator.

Progress (attempts, next attempt time, last error) is kept on the project document, so a
restarted manager resumes every unfinished project from the database.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping

from flops_contracts.errors import FlopsError
from flops_contracts.spec import TrainingMode
from flops_manager.lifecycle import planner
from flops_manager.lifecycle.actions import NEEDS_TRACKING, Action, ActionKind, Role
from flops_manager.lifecycle.deployments import DeploymentReconciler
from flops_manager.lifecycle.placement import build_target, ensure_tracking_server, placement
from flops_manager.lifecycle.service_specs import action_specs, parsed_spec, services_of
from flops_manager.lifecycle.state import PendingAction, Phase, Project
from flops_manager.ports.errors import NotFoundError, PermanentError, TemporaryError
from flops_manager.ports.orchestrator import BuildTarget, Cluster, Orchestrator, ServiceState
from flops_manager.ports.project_store import ProjectStore
from flops_manager.services.clock import Clock, system_clock
from flops_manager.services.mutate import mutate_project, record_missing_phase_change
from flops_manager.settings import Settings

log = logging.getLogger(__name__)


def choose_clusters(
    wanted: list[str] | None, active: list[Cluster], *, labels: bool
) -> tuple[str, ...]:
    """The clusters a hierarchical project runs on: the named ones, or every active one.

    Raises
    ------
    PermanentError
        If a named cluster is not active, or no cluster is.
    """
    if labels:  # one machine: cluster names are only labels
        return tuple(wanted or [c.name for c in active][:1] or ["local"])
    names = [c.name for c in active if c.active]
    if not wanted:
        if not names:
            raise PermanentError("no active cluster to place the cluster aggregators on")
        return tuple(names)
    missing = [name for name in wanted if name not in names]
    if missing:
        raise PermanentError(f"clusters {missing} are not active (active: {names})")
    return tuple(wanted)


def _without(project: Project, key: str) -> Project:
    kept = tuple(p for p in project.pending if Action.from_dict(p.action).key != key)
    return project.replace(pending=kept)


def _after_restart(project: Project, *, now: float) -> Project:
    return planner.plan_lost_services(project, now=now).project


class ReconcileWorker:
    """Runs :meth:`tick` every ``settings.reconcile_interval_s`` until stopped."""

    def __init__(
        self,
        store: ProjectStore,
        orchestrator: Orchestrator,
        settings: Settings,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.settings = settings
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.timeouts: Mapping[Phase, float | None] = dict(settings.phase_timeouts)
        self.deployments = DeploymentReconciler(store, orchestrator, settings, clock=clock)
        self._recovered = True

    def start(self) -> None:
        """Start the background thread (first pass immediately).

        With a backend that loses its services when the manager stops (local processes),
        the projects that had services are first failed or redone
        (:func:`planner.plan_lost_services`); if the database is unavailable, that is retried
        by the thread before its first pass.
        """
        self._recovered = False
        self._recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="flops-reconcile", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _recover(self) -> None:
        if self._recovered:
            return
        try:
            for project in self.store.list_projects_needing_work():
                record_missing_phase_change(self.store, project, now=self.clock())
            if not self.orchestrator.services_survive_restart:
                self.recover_lost_services()
        except Exception:  # noqa: BLE001 - retried by the loop
            log.exception("recovering projects after a restart failed; retrying")
            return
        self._recovered = True

    def recover_lost_services(self) -> int:
        """Fail or redo every unfinished project whose services the backend lost.

        Returns how many projects changed.
        """
        changed = 0
        for project in self.store.list_projects_needing_work():
            now = self.clock()
            before = project.phase
            try:
                after = mutate_project(
                    self.store, project.id,
                    functools.partial(_after_restart, now=now), now=now,
                )
            except NotFoundError:
                continue
            if after.version != project.version:
                changed += 1
                log.warning("project %s (%s) after the restart: %s", project.id, before.value,
                            after.last_error if after.terminal else "redoing its step")
        return changed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._recover()
                self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("reconcile pass failed")
            self._wake.wait(self.settings.reconcile_interval_s)
            self._wake.clear()

    def wake(self) -> None:
        """Run the next pass now instead of after the interval (e.g. an event arrived)."""
        self._wake.set()

    def tick(self) -> int:
        """Reconcile every project, then every deployment, that needs work once.

        Returns how many actions ran.
        """
        ran = 0
        for project in self.store.list_projects_needing_work():
            try:
                ran += self.reconcile(project.id)
            except NotFoundError:
                continue
        return ran + self.deployments.tick()

    def reconcile(self, project_id: str) -> int:
        """Apply timers, then run due pending actions of one project in order."""
        now = self.clock()
        project = mutate_project(
            self.store,
            project_id,
            lambda p: planner.plan_tick(p, now=now, timeouts=self.timeouts).project,
            now=now,
        )
        failed = self._failed_services(project)
        if failed:
            project = mutate_project(
                self.store,
                project_id,
                lambda p: planner.plan_observation(p, failed, now=now).project,
                now=now,
            )
        ran = 0
        while project.pending and not self._stop.is_set():
            pending = project.pending[0]
            if pending.next_attempt_at > self.clock():
                break
            action = Action.from_dict(pending.action)
            try:
                self._execute(action, project)
            except TemporaryError as exc:
                self._retry_later(project, pending, action, exc)
                break
            except FlopsError as exc:
                self._give_up(project, action, exc.message)
                break
            except Exception as exc:  # noqa: BLE001 - unexpected errors fail the action
                log.exception("action %s failed", action.key)
                self._give_up(project, action, f"{type(exc).__name__}: {exc}")
                break
            ran += 1
            if action.kind is ActionKind.DELETE_PROJECT:
                return ran
            project = mutate_project(
                self.store, project_id, functools.partial(_without, key=action.key),
                now=self.clock(),
            )
        return ran

    def _failed_services(self, project: Project) -> dict[Role, str]:
        """Services of roles the project needs now that the orchestrator reports as failed."""
        if project.terminal:
            return {}
        failed: dict[Role, str] = {}
        for role in planner.watched_roles(project.phase):
            for name in services_of(project, (role,)):
                try:
                    status = self.orchestrator.service_status(name)
                except TemporaryError as exc:  # look again on the next pass
                    log.warning("status of %s unavailable: %s", name, exc.message)
                    continue
                if status is not None and status.state is ServiceState.FAILED:
                    failed[role] = status.message or f"service {name} failed"
        return failed

    def _prepare(self, action: Action, project: Project) -> Project:
        """Record decisions an action depends on (the clusters of a hierarchical project)."""
        if action.kind not in (ActionKind.DEPLOY_DATA, ActionKind.DEPLOY_AGGREGATOR) or (
            project.clusters
        ):
            return project
        training = parsed_spec(project).training
        if training.mode is not TrainingMode.HIERARCHICAL:
            return project
        clusters = choose_clusters(
            training.clusters, self.orchestrator.list_clusters(),
            labels=self.orchestrator.clusters_are_labels,
        )
        return mutate_project(
            self.store, project.id, lambda p: p.replace(clusters=clusters), now=self.clock()
        )

    def _execute(self, action: Action, project: Project) -> None:
        log.info("running %s", action.key)
        if action.kind is ActionKind.REMOVE_SERVICES:
            for name in services_of(project, action.roles):
                self.orchestrator.remove_service(name)
            return
        if action.kind is ActionKind.DEPLOY_TRACKING:
            ensure_tracking_server(self.orchestrator, self.settings)
            return
        if action.kind is ActionKind.DELETE_PROJECT:
            for record in self.store.list_service_records(
                owner=project.owner, kind=Role.INFERENCE_SERVER.value, project_id=project.id
            ):
                self.orchestrator.remove_service(record.name)  # e.g. extra inference servers
                self.store.delete_service_record(record.id)
            self.store.delete_project(project.id)
            return
        if (action.kind is ActionKind.BUILD_MODEL_IMAGE
                and build_target(self.orchestrator, self.settings) is BuildTarget.ENVIRONMENT):
            # The project's environment already holds everything the inference server needs.
            mutate_project(self.store, project.id,
                           lambda p: planner.model_built(p, now=self.clock()).project,
                           now=self.clock())
            return
        project = self._prepare(action, project)
        place = placement(self.orchestrator, self.settings, project,
                          tracking=action.kind in NEEDS_TRACKING)
        for spec in action_specs(action, project, self.settings, place):
            self.orchestrator.create_service(spec)
            if spec.public and action.kind is ActionKind.DEPLOY_INFERENCE:
                self._record_endpoint(project.id, "inference", spec.name)

    def _record_endpoint(self, project_id: str, key: str, service: str) -> None:
        url = self.orchestrator.public_url(service)
        if url is None:
            return
        mutate_project(
            self.store, project_id,
            lambda p: p.replace(endpoints={**p.endpoints, key: url}),
            now=self.clock(),
        )

    def _retry_later(
        self, project: Project, pending: PendingAction, action: Action, exc: TemporaryError
    ) -> None:
        attempts = pending.attempts + 1
        if attempts >= self.settings.action_max_attempts:
            self._give_up(project, action, f"gave up after {attempts} attempts: {exc.message}")
            return
        delay = planner.retry_delay(attempts, self.settings.action_backoff_s)
        log.warning("%s failed (%s); retry %d in %.1f s", action.key, exc.message, attempts, delay)

        def update(p: Project) -> Project:
            entries = tuple(
                PendingAction(
                    action=e.action,
                    attempts=attempts,
                    next_attempt_at=self.clock() + delay,
                    last_error=exc.message,
                )
                if Action.from_dict(e.action).key == action.key
                else e
                for e in p.pending
            )
            return p.replace(pending=entries)

        mutate_project(self.store, project.id, update, now=self.clock())

    def _give_up(self, project: Project, action: Action, reason: str) -> None:
        log.error("%s failed permanently: %s", action.key, reason)
        now = self.clock()

        def update(p: Project) -> Project:
            dropped = _without(p, key=action.key)
            if dropped.terminal:
                return dropped
            return planner.fail(dropped, f"{action.kind.value} failed: {reason}", now).project

        mutate_project(self.store, project.id, update, now=now)
