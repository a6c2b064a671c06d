"""The reconcile worker: a thread that applies planned actions through the Orchestrator.

Progress (attempts, next attempt time, last error) is kept on the project document, so a
restarted manager resumes every unfinished project from the database. Each pass compares the
services a project should have with what the orchestrator observes (failed services of the
phase fail it; services that disappeared are recreated or fail it, :mod:`.drift`), then runs
its due actions. Projects are reconciled concurrently by a bounded pool
(``settings.reconcile_workers``), one pass of a project at a time, so one slow backend call
(an image pull) delays only its own project.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Mapping

from flops_contracts.errors import FlopsError
from flops_contracts.spec import TrainingMode
from flops_manager.identity.enrollment import Enrollment
from flops_manager.identity.registry_access import trusted_images
from flops_manager.lifecycle import drift, planner, wills
from flops_manager.lifecycle.actions import NEEDS_TRACKING, Action, ActionKind, Role
from flops_manager.lifecycle.deployments import DeploymentReconciler
from flops_manager.lifecycle.placement import build_target, ensure_tracking_server, placement
from flops_manager.lifecycle.service_specs import action_specs, parsed_spec, services_of
from flops_manager.lifecycle.state import PendingAction, Phase, Project
from flops_manager.nodes.placement import node_clusters
from flops_manager.ports.errors import NotFoundError, PermanentError, TemporaryError
from flops_manager.ports.orchestrator import (
    BuildTarget,
    Cluster,
    Orchestrator,
    ServiceState,
    ServiceStatus,
)
from flops_manager.ports.project_store import ProjectStore, owner_projects
from flops_manager.services.clock import Clock, system_clock
from flops_manager.services.mutate import mutate_project, record_missing_phase_change
from flops_manager.settings import Settings

TRUSTED_PROJECTS = 50
"""How many of an owner's projects of one repository hand their recorded digests to a build."""

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


def _done(project: Project, action: Action, created: tuple[Role, ...]) -> Project:
    """Drop the finished ``action`` and record the services it created or removed."""
    project = _without(project, action.key)
    if action.kind is ActionKind.REMOVE_SERVICES:
        return drift.record_removed(project, action.roles)
    return drift.record_created(project, created)


def _observed(
    project: Project, statuses: Mapping[str, ServiceStatus | None]
) -> tuple[dict[Role, str], dict[Role, tuple[str, ...]]]:
    """Failed watched roles (role -> message) and, per drift-watched role, what is gone.

    ``statuses`` maps the service names the worker could observe to their status (``None``:
    the service does not exist); roles with an unobserved service are left out.
    """
    failed: dict[Role, str] = {}
    for role in planner.watched_roles(project.phase):
        for name in services_of(project, (role,)):
            status = statuses.get(name)
            if status is not None and status.state is ServiceState.FAILED:
                failed[role] = status.message or f"service {name} failed"
    gone: dict[Role, tuple[str, ...]] = {}
    for role in drift.watched(project):
        names = services_of(project, (role,))
        if any(name not in statuses for name in names):
            continue
        gone[role] = tuple(missing for name in names for missing in _gone(name, statuses[name]))
    return failed, gone


def _gone(name: str, status: ServiceStatus | None) -> tuple[str, ...]:
    """What of service ``name`` is gone: all of it, or the instances its status names."""
    return (name,) if status is None else status.missing


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
        enrollment: Enrollment | None = None,
        hearing_since: Callable[[], float | None] | None = None,
    ) -> None:
        """Set up the worker (started by :meth:`start`).

        ``hearing_since`` tells when the manager's event source last (re)connected to the
        broker (``None``: disconnected now); pending last wills expire only while it hears
        (default: always).
        """
        self.store = store
        self.hearing_since = hearing_since or _always
        self.enrollment = enrollment or Enrollment(store, settings, clock=clock)
        self.orchestrator = orchestrator
        self.settings = settings
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.timeouts: Mapping[Phase, float | None] = dict(settings.phase_timeouts)
        self.drift = drift.DriftPolicy(grace_s=settings.drift_grace_s,
                                       max_repairs=settings.drift_max_repairs)
        self.deployments = DeploymentReconciler(
            store, orchestrator, settings, clock=clock, seal=self.enrollment.seal_standalone,
            unseal=lambda project_id, name: self.enrollment.revoke(project_id, service=name))
        self._recovered = True
        self._passes = _DaemonPool(settings.reconcile_workers)
        self._in_flight: set[str] = set()
        self._again: set[str] = set()
        """Projects skipped while their pass ran: passed again as soon as it lands."""
        self._flight_lock = threading.Lock()

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
        """Ask the thread to stop and wait for it (projects' passes end after their action)."""
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
        except Exception:
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
                for future in self._dispatch():
                    future.add_done_callback(_log_failure)
                self.deployments.tick()  # inference deployments asked for through the API
            except Exception:
                log.exception("reconcile pass failed")
            self._wake.wait(self.settings.reconcile_interval_s)
            self._wake.clear()

    def wake(self) -> None:
        """Run the next pass now instead of after the interval (e.g. an event arrived)."""
        self._wake.set()

    def _dispatch(self) -> list[concurrent.futures.Future[int]]:
        """Submit a pass of every project that needs work and has no pass running."""
        futures = []
        for project in self.store.list_projects_needing_work():
            with self._flight_lock:
                if project.id in self._in_flight:
                    # an event may have arrived after the running pass read the project
                    self._again.add(project.id)
                    continue
                self._in_flight.add(project.id)
            futures.append(self._passes.submit(functools.partial(self._pass, project.id)))
        return futures

    def _landed(self, project_id: str) -> None:
        """End ``project_id``'s pass; wake the loop if it was asked for meanwhile."""
        with self._flight_lock:
            self._in_flight.discard(project_id)
            again = project_id in self._again
            self._again.discard(project_id)
        if again:
            self.wake()

    def _pass(self, project_id: str) -> int:
        try:
            return self.reconcile(project_id)
        except NotFoundError:
            return 0
        finally:
            self._landed(project_id)

    def tick(self) -> int:
        """Reconcile every project that needs work once, concurrently, then every deployment.

        Returns how many actions ran. Projects whose pass is already running are skipped.

        Raises
        ------
        Exception
            The first error of a project's pass, after every pass ended.
        """
        futures = self._dispatch()
        concurrent.futures.wait(futures)
        errors = [error for f in futures if (error := f.exception()) is not None]
        if errors:
            raise errors[0]
        return sum(f.result() for f in futures) + self.deployments.tick()

    def reconcile(self, project_id: str) -> int:
        """Apply timers, then run due pending actions of one project in order."""
        now = self.clock()
        project = mutate_project(
            self.store,
            project_id,
            functools.partial(self._timers, now=now, hearing=self._hearing()),
            now=now,
        )
        failed, gone = _observed(project, self._statuses(project))
        if failed or any(gone.values()) or any(
                w.missing_since is not None for w in project.services.values()):
            project = mutate_project(
                self.store,
                project_id,
                functools.partial(self._apply_observation, failed=failed, gone=gone, now=now),
                now=now,
            )
        ran = 0
        while project.pending and not self._stop.is_set():
            pending = project.pending[0]
            if pending.next_attempt_at > self.clock():
                break
            action = Action.from_dict(pending.action)
            try:
                created = self._execute(action, project)
            except TemporaryError as exc:
                self._retry_later(project, pending, action, exc)
                break
            except FlopsError as exc:
                self._give_up(project, action, exc.message)
                break
            except Exception as exc:
                log.exception("action %s failed", action.key)
                self._give_up(project, action, f"{type(exc).__name__}: {exc}")
                break
            ran += 1
            if action.kind is ActionKind.DELETE_PROJECT:
                return ran
            project = mutate_project(
                self.store, project_id,
                functools.partial(_done, action=action, created=created), now=self.clock(),
            )
        return ran

    def _hearing(self) -> wills.Hearing:
        return wills.Hearing(grace_s=self.settings.will_grace_s, since=self.hearing_since())

    def _timers(self, project: Project, *, now: float, hearing: wills.Hearing) -> Project:
        """Start or time out the phase, then expire last wills without a sign of life."""
        ticked = planner.plan_tick(project, now=now, timeouts=self.timeouts).project
        return planner.plan_wills(ticked, now=now, hearing=hearing).project

    def _apply_observation(self, project: Project, *, failed: Mapping[Role, str],
                           gone: Mapping[Role, tuple[str, ...]], now: float) -> Project:
        observed = planner.plan_observation(project, failed, now=now).project
        return drift.plan_drift(observed, gone, now=now, policy=self.drift).project

    def _statuses(self, project: Project) -> dict[str, ServiceStatus | None]:
        """Status of every service the project needs now (unavailable ones left out).

        Nothing is read when ``settings.service_status_polling`` is off (failures are then
        noticed through events and last wills only, and drift is not detected).
        """
        if project.terminal or not self.settings.service_status_polling:
            return {}
        roles = {*planner.watched_roles(project.phase), *drift.watched(project)}
        statuses: dict[str, ServiceStatus | None] = {}
        for name in services_of(project, tuple(roles)):
            try:
                statuses[name] = self.orchestrator.service_status(name)
            except TemporaryError as exc:  # look again on the next pass
                log.warning("status of %s unavailable: %s", name, exc.message)
        return statuses

    def _prepare(self, action: Action, project: Project) -> Project:
        """Record decisions an action depends on: the clusters of a hierarchical project.

        On node data those of its learners' nodes, else the named or every active one.
        """
        if action.kind not in (ActionKind.DEPLOY_DATA, ActionKind.DEPLOY_AGGREGATOR) or (
            project.clusters
        ):
            return project
        training = parsed_spec(project).training
        if training.mode is not TrainingMode.HIERARCHICAL:
            return project
        # on node data the clusters are those of the learners' nodes (placed at submission)
        wanted = list(node_clusters(project.placement)) or training.clusters
        clusters = choose_clusters(
            wanted, self.orchestrator.list_clusters(),
            labels=self.orchestrator.clusters_are_labels,
        )
        return mutate_project(
            self.store, project.id, lambda p: p.replace(clusters=clusters), now=self.clock()
        )

    def _execute(self, action: Action, project: Project) -> tuple[Role, ...]:
        """Run ``action``; return the roles of the services it created."""
        log.info("running %s", action.key)
        if action.kind is ActionKind.REMOVE_SERVICES:
            for name in services_of(project, action.roles):
                self.orchestrator.remove_service(name)
            if project.terminal:  # the project ended: so do its credentials
                self.enrollment.revoke(project.id)
            return ()
        if action.kind is ActionKind.DEPLOY_TRACKING:
            ensure_tracking_server(self.orchestrator, self.settings)
            return ()
        if action.kind is ActionKind.DELETE_PROJECT:
            for record in self.store.list_service_records(
                owner=project.owner, kind=Role.INFERENCE_SERVER.value, project_id=project.id
            ):
                self.orchestrator.remove_service(record.name)  # e.g. extra inference servers
                self.store.delete_service_record(record.id)
            self.enrollment.revoke(project.id, standalone=True)
            self.store.delete_project(project.id)
            return ()
        if (action.kind is ActionKind.BUILD_MODEL_IMAGE
                and build_target(self.orchestrator, self.settings) is BuildTarget.ENVIRONMENT):
            # The project's environment already holds everything the inference server needs.
            mutate_project(self.store, project.id,
                           lambda p: planner.model_built(p, now=self.clock()).project,
                           now=self.clock())
            return ()
        project = self._prepare(action, project)
        if action.kind in NEEDS_TRACKING:  # permissions before the services that use them
            self.enrollment.tracking.prepare(project)
        place = placement(self.orchestrator, self.settings, project,
                          tracking=action.kind in NEEDS_TRACKING)
        if action.kind in (ActionKind.BUILD_IMAGES, ActionKind.BUILD_MODEL_IMAGE):
            place = dataclasses.replace(place, trusted_images=self._trusted_images(project))
        created: list[Role] = []
        for spec in action_specs(action, project, self.settings, place):
            spec = self.enrollment.seal(spec)  # credentials only through enrollment
            self.orchestrator.create_service(spec)
            created.append(Role(spec.role))
            if spec.public and action.kind is ActionKind.DEPLOY_INFERENCE:
                self._record_endpoint(project.id, "inference", spec.name)
        return tuple(dict.fromkeys(created))

    def _trusted_images(self, project: Project) -> tuple[str, ...]:
        """Digests FLOps recorded pushing for images the builder of ``project`` may reuse.

        Those of the owner's newest :data:`TRUSTED_PROJECTS` projects of the same repository
        (the only ones whose images have the same names; the list travels in an environment
        variable, so it is bounded).
        """
        url = project.repository.get("url")
        same = (p.build for p in owner_projects(self.store, project.owner)
                if p.repository.get("url") == url)
        return tuple(trusted_images(itertools.islice(same, TRUSTED_PROJECTS)))

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


def _always() -> float:
    """Hearing the broker since ever: no event source tells otherwise."""
    return 0.0


def _log_failure(future: concurrent.futures.Future[int]) -> None:
    """Log the error of a background pass (the next pass tries again)."""
    if not future.cancelled() and future.exception() is not None:
        log.error("reconcile pass failed", exc_info=future.exception())


class _DaemonPool:
    """At most ``size`` daemon threads running submitted calls in order.

    Unlike ``ThreadPoolExecutor`` (whose threads the interpreter joins at exit), a call blocked
    in a slow backend request never delays the manager's exit.
    """

    def __init__(self, size: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], int], concurrent.futures.Future[int]]]
        self._queue = queue.SimpleQueue()
        for index in range(size):
            threading.Thread(target=self._serve, name=f"flops-reconcile-{index}",
                             daemon=True).start()

    def submit(self, call: Callable[[], int]) -> concurrent.futures.Future[int]:
        """Queue ``call``; its future holds the result or the exception."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._queue.put((call, future))
        return future

    def _serve(self) -> None:
        while True:
            call, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                future.set_exception(exc)
