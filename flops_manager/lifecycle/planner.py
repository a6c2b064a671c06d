"""Pure transition logic: project state + event or observation -> new state + actions.

Nothing here performs I/O or reads the clock; callers pass ``now``. Events that are late (the
project is terminal), duplicated or out of order (of an incarnation the component has left, older
than what was already recorded for its incarnation, or a round not newer than the current one)
leave the project unchanged; see :mod:`.incarnations`. A component's last will is honoured
whenever it arrives for the connection that sent it, unless the component shows a sign of life
within a grace period (:mod:`.wills`, :func:`plan_wills`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from flops_contracts.backoff import backoff_delay
from flops_contracts.events import Component, Event, EventType, connection_of
from flops_manager.lifecycle import actions as act
from flops_manager.lifecycle import incarnations, wills
from flops_manager.lifecycle.actions import Action, ActionKind, Role
from flops_manager.lifecycle.state import PendingAction, Phase, Project

_AGGREGATORS = frozenset({Component.AGGREGATOR, Component.ROOT_AGGREGATOR})
_TRAINING_REQUIRED = _AGGREGATORS | {Component.CLUSTER_AGGREGATOR, Component.TRACKING_SERVER}

REQUIRED: Mapping[Phase, frozenset[Component]] = {
    Phase.BUILDING: frozenset({Component.BUILDER}),
    Phase.DEPLOYING: _TRAINING_REQUIRED | {Component.MOCK_DATA_PROVIDER},
    Phase.TRAINING: _TRAINING_REQUIRED,
    Phase.POST_TRAINING: frozenset({Component.BUILDER, Component.INFERENCE_SERVER}),
    Phase.SERVING: frozenset({Component.INFERENCE_SERVER}),
}
"""Components whose failure or loss fails the project, per phase."""

_OPTIONAL: Mapping[Phase, frozenset[Component]] = {
    Phase.DEPLOYING: frozenset({Component.LEARNER}),
    Phase.TRAINING: frozenset({Component.LEARNER}),
}

MODEL_KEYS = (
    "model_uri", "registered_model", "model_version", "registry_uri", "mlflow_run_id",
    "mlflow_experiment_id",
)
BUILD_KEYS = (
    "env_dir", "python", "repo_dir", "commit", "cache_hit", "timings", "images",
    "dependency_hash", "cache_key", "platforms", "variants",
)
"""Keys of a builder's ``completed`` event kept in ``Project.build``."""
BUILD_STEP = "build_image_for_trained_model"
DEPLOY_STEP = "deploy_trained_model_image"


@dataclasses.dataclass(frozen=True)
class Decision:
    """The planner's answer: the new project state and the actions it queued."""

    project: Project
    actions: tuple[Action, ...] = ()

    def changed_from(self, before: Project) -> bool:
        """Whether anything differs from ``before``."""
        return self.project != before


def queue(project: Project, actions: tuple[Action, ...]) -> Project:
    """Append ``actions`` to the project's pending list, skipping ones already queued."""
    keys = {Action.from_dict(p.action).key for p in project.pending}
    fresh = [a for a in actions if a.key not in keys]
    if not fresh:
        return project
    return project.replace(
        pending=project.pending + tuple(PendingAction(action=a.to_dict()) for a in fresh)
    )


_CLEANUP_KINDS = frozenset({ActionKind.REMOVE_SERVICES, ActionKind.DELETE_PROJECT})


def decide(project: Project, actions: tuple[Action, ...]) -> Decision:
    """Queue ``actions`` (with the tracking server before the actions that need it)."""
    planned = act.with_tracking(actions)
    return Decision(queue(project, planned), planned)


def _move(project: Project, phase: Phase, now: float, *actions: Action, **changes: Any) -> Decision:
    moved = project.replace(phase=phase, phase_since=now, **changes)
    if moved.terminal:  # services not created yet need not be created any more
        kept = tuple(
            p for p in moved.pending if ActionKind(p.action["kind"]) in _CLEANUP_KINDS
        )
        moved = moved.replace(pending=kept)
    return decide(moved, actions)


def fail(project: Project, reason: str, now: float) -> Decision:
    """Move ``project`` to ``failed`` with ``reason`` and queue removal of its services."""
    return _move(
        project, Phase.FAILED, now, act.remove_services(project.id), last_error=reason
    )


def _steps(project: Project) -> list[str]:
    return [str(s) for s in project.spec.get("post_training_steps", [])]


def _record_signal(project: Project, event: Event, now: float) -> Project | None:
    """Record a numbered last will (pending) or an ``online``; ``None`` if nothing changes."""
    key = f"{event.component.value}/{event.instance}"
    seen = project.components.get(key)
    entry = (wills.online(seen, event) if event.event is EventType.ONLINE
             else wills.suspect(seen, event, now=now))
    if entry is None:
        return None
    return project.replace(components={**project.components, key: entry})


def _record_component(project: Project, event: Event) -> Project | None:
    """Record the component's latest state; ``None`` if the event is stale or a duplicate."""
    key = f"{event.component.value}/{event.instance}"
    seen = project.components.get(key)
    if not incarnations.accepts(seen, event):
        return None
    reason = event.data.get("error") or event.data.get("reason") or event.data.get("message")
    entry = incarnations.record(seen, event)
    if reason is not None:
        entry["message"] = str(reason)[:500]
    return project.replace(components={**project.components, key: entry})


def _on_round(project: Project, event: Event, now: float) -> Decision:
    raw_round = event.data.get("round")
    if not isinstance(raw_round, int) or isinstance(raw_round, bool) or raw_round <= project.round:
        return Decision(project)
    metrics = event.data.get("metrics")  # payload: flops_contracts.events.training_data
    total = event.data.get("total_rounds")
    changes: dict[str, Any] = {"round": raw_round}
    if isinstance(metrics, dict):
        changes["metrics"] = dict(metrics)
    if isinstance(total, int) and not isinstance(total, bool) and total > 0:
        changes["total_rounds"] = total
    if project.phase is Phase.DEPLOYING:
        return _move(project, Phase.TRAINING, now, **changes)
    return Decision(project.replace(**changes))


_TRAINING_ROLES = (Role.DATA_SERVER, Role.AGGREGATOR, Role.CLUSTER_AGGREGATOR, Role.LEARNERS)


def _on_training_completed(project: Project, event: Event, now: float) -> Decision:
    model = {k: event.data[k] for k in MODEL_KEYS if event.data.get(k) is not None}
    changes: dict[str, Any] = {"model": model or None}
    if isinstance(event.data.get("metrics"), dict):
        changes["metrics"] = dict(event.data["metrics"])
    if BUILD_STEP in _steps(project) and model.get("model_uri"):
        return _move(
            project,
            Phase.POST_TRAINING,
            now,
            act.remove_services(project.id, *_TRAINING_ROLES),
            Action(ActionKind.BUILD_MODEL_IMAGE, project.id),
            **changes,
        )
    return _move(project, Phase.COMPLETED, now, act.remove_services(project.id), **changes)


def _on_built(project: Project, event: Event, now: float) -> Decision:
    """The builder finished the FL images (building) or the trained-model image (after)."""
    data = {k: event.data[k] for k in BUILD_KEYS if event.data.get(k) is not None}
    if project.phase is not Phase.BUILDING:
        build = project.build or {}
        images = {**build.get("images", {}), **data.get("images", {})}
        variants = {**build.get("variants", {}), **data.get("variants", {})}
        return model_built(project.replace(build={**build, "images": images,
                                                  "variants": variants}), now=now)
    return _move(project, Phase.DEPLOYING, now, act.remove_services(project.id, Role.BUILDER),
                 *deploy_actions(project), build=data)


def deploy_actions(project: Project) -> tuple[Action, ...]:
    """What starts a built project: everything that does not wait for another component.

    Without mock data, the aggregator and the learners start together. Mock data (written to
    the project's nodes, one provider per node) starts alone: the aggregator records each
    learner's rows and label counts, which are known once every node's provider reported, and
    the learners need their data (:func:`_on_data_ready`).
    """
    if project.spec.get("mock_data"):
        return (Action(ActionKind.DEPLOY_DATA, project.id),)
    return (Action(ActionKind.DEPLOY_AGGREGATOR, project.id),
            Action(ActionKind.DEPLOY_LEARNERS, project.id))


def data_ready(project: Project) -> bool:
    """Whether the learners' data is in place: no mock data, or every node's provider completed.

    Read from the recorded component states (a provider's record outlives its service).
    """
    if not project.spec.get("mock_data"):
        return True
    prefix = f"{Component.MOCK_DATA_PROVIDER.value}/"
    done = sum(1 for key, entry in project.components.items()
               if key.startswith(prefix) and entry.get("state") == EventType.COMPLETED.value)
    return done >= max(len(project.placement), 1)


def with_partition_stats(project: Project, event: Event) -> Project:
    """Record the rows and label counts a node's mock data provider wrote in the placement."""
    reports = {r.get("index"): r for r in event.data.get("partitions") or ()
               if isinstance(r, dict)}
    placement = tuple(
        {**entry, "rows": int(reports[entry["learner"]].get("rows") or 0),
         "label_histogram": dict(reports[entry["learner"]].get("label_histogram") or {})}
        if entry.get("learner") in reports else entry
        for entry in project.placement)
    return project.replace(placement=placement) if placement != project.placement else project


def aggregator_started(project: Project) -> bool:
    """Whether the (classic or root) aggregator reported ``started``: it is listening."""
    prefixes = tuple(f"{kind.value}/" for kind in _AGGREGATORS)
    return any(key.startswith(prefixes) and entry.get("state") == EventType.STARTED.value
               for key, entry in project.components.items())


def _deployed(project: Project, now: float, *actions: Action) -> Decision:
    """Queue ``actions``; training begins once the aggregator listens and the data is ready.

    The aggregator's ``started`` and the mock data provider's ``completed`` may arrive in
    either order: whichever comes second moves the project on (both are read from state).
    """
    if project.phase is Phase.DEPLOYING and aggregator_started(project) and data_ready(project):
        return _move(project, Phase.TRAINING, now, *actions)
    return decide(project, actions)


def _on_data_ready(project: Project, event: Event, now: float) -> Decision:
    """A node's mock data provider completed: once all did, start the aggregator and learners.

    The aggregator starts knowing each learner's rows and label counts.
    """
    project = with_partition_stats(project, event)
    if not data_ready(project) or project.phase is not Phase.DEPLOYING:
        return Decision(project)
    return _deployed(project, now, act.remove_services(project.id, Role.MOCK_DATA_PROVIDER),
                     Action(ActionKind.DEPLOY_AGGREGATOR, project.id),
                     Action(ActionKind.DEPLOY_LEARNERS, project.id))


def model_built(project: Project, *, now: float) -> Decision:
    """The trained model's image (or environment) is ready: start serving it, or finish.

    The project stays in ``post_training`` until the inference server reports ``started``
    (it listens): ``serving`` and the inference link mean that a request is answered.
    """
    if DEPLOY_STEP in _steps(project):
        return decide(project, (act.remove_services(project.id, Role.MODEL_BUILDER),
                                Action(ActionKind.DEPLOY_INFERENCE, project.id)))
    return _move(project, Phase.COMPLETED, now, act.remove_services(project.id))


def plan_event(project: Project, event: Event, *, now: float) -> Decision:
    """Apply a component event to ``project``.

    Parameters
    ----------
    project
        Current state.
    event
        A validated event of this project.
    now
        Current time (epoch seconds), used for phase start times.
    """
    phase = project.phase
    relevant = REQUIRED.get(phase, frozenset()) | _OPTIONAL.get(phase, frozenset())
    if project.terminal or event.component not in relevant:
        return Decision(project)
    if event.event in (EventType.LOG, EventType.PROGRESS, EventType.ROUND_STARTED):
        return Decision(project)
    if event.event is EventType.ONLINE or (
            event.event is EventType.LOST and connection_of(event) is not None):
        return Decision(_record_signal(project, event, now) or project)
    recorded = _record_component(project, event)
    if recorded is None:
        return Decision(project)
    kind, what = event.component, event.event
    if what in (EventType.FAILED, EventType.LOST) and kind in REQUIRED.get(phase, frozenset()):
        entry = recorded.components[f"{kind.value}/{event.instance}"]
        reason = entry.get("message") or ("connection lost" if what is EventType.LOST else "failed")
        return fail(recorded, f"{kind.value} '{event.instance}' {what.value}: {reason}", now)
    if kind in _AGGREGATORS:
        if what is EventType.STARTED and phase is Phase.DEPLOYING:
            return _deployed(recorded, now)
        if what is EventType.ROUND_COMPLETED:
            return _on_round(recorded, event, now)
        if what is EventType.COMPLETED:
            return _on_training_completed(recorded, event, now)
    if kind is Component.BUILDER and what is EventType.COMPLETED:
        return _on_built(recorded, event, now)
    if kind is Component.MOCK_DATA_PROVIDER and what is EventType.COMPLETED:
        return _on_data_ready(recorded, event, now)
    if (kind is Component.INFERENCE_SERVER and what is EventType.STARTED
            and phase is Phase.POST_TRAINING):
        return _move(recorded, Phase.SERVING, now)
    return Decision(recorded)


ROLE_COMPONENTS: Mapping[Role, Component] = {
    Role.BUILDER: Component.BUILDER,
    Role.MODEL_BUILDER: Component.BUILDER,
    Role.DATA_SERVER: Component.DATA_SERVER,
    Role.MOCK_DATA_PROVIDER: Component.MOCK_DATA_PROVIDER,
    Role.AGGREGATOR: Component.AGGREGATOR,
    Role.CLUSTER_AGGREGATOR: Component.CLUSTER_AGGREGATOR,
    Role.LEARNERS: Component.LEARNER,
    Role.INFERENCE_SERVER: Component.INFERENCE_SERVER,
    Role.TRACKING_SERVER: Component.TRACKING_SERVER,
}
"""The component kind whose events a service of each role publishes."""


def watched_roles(phase: Phase) -> tuple[Role, ...]:
    """Roles whose services' failure fails a project in ``phase``."""
    required = REQUIRED.get(phase, frozenset())
    return tuple(role for role, kind in ROLE_COMPONENTS.items() if kind in required)


def plan_observation(project: Project, failed: Mapping[Role, str], *, now: float) -> Decision:
    """Fail ``project`` if a service it needs in its phase failed.

    Parameters
    ----------
    failed
        Role -> the backend's message, for services the orchestrator reports as failed.
    """
    if project.terminal:
        return Decision(project)
    for role in watched_roles(project.phase):
        if role in failed:
            return fail(project, f"{role.value} failed: {failed[role]}", now)
    return Decision(project)


def plan_tick(
    project: Project, *, now: float, timeouts: Mapping[Phase, float | None]
) -> Decision:
    """Advance a project on a timer: start submitted projects and expire phase timeouts.

    ``timeouts`` maps a phase to its limit in seconds (missing or ``None``: no limit).
    """
    if project.phase is Phase.SUBMITTED:
        return _move(project, Phase.BUILDING, now, act.build_images(project.id))
    limit = timeouts.get(project.phase)
    if limit is not None and not project.terminal and now - project.phase_since > limit:
        return fail(
            project, f"timed out in phase '{project.phase.value}' after {limit:g} s", now
        )
    return Decision(project)


def plan_wills(project: Project, *, now: float, hearing: wills.Hearing) -> Decision:
    """Expire the pending last wills that outlived their grace without a sign of life.

    The component is then ``lost``; if the project needs it in its phase, the project fails
    naming it and the will's reason.
    """
    if project.terminal:
        return Decision(project)
    for key in sorted(project.components):
        entry = project.components[key]
        if not wills.overdue(entry, now=now, hearing=hearing):
            continue
        lost = wills.expire(entry)
        project = project.replace(components={**project.components, key: lost})
        kind, _, instance = key.partition("/")
        if Component(kind) in REQUIRED.get(project.phase, frozenset()):
            return fail(project, f"{kind} '{instance}' lost: {lost['message']}", now)
    return Decision(project)


def retry_delay(attempts: int, base_s: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones (doubling, at most 60 s)."""
    return backoff_delay(max(attempts - 1, 0), base_s=base_s, cap_s=60.0)


def plan_cancel(project: Project, *, now: float) -> Decision:
    """Cancel a running project (removing its services); terminal projects are unchanged."""
    if project.terminal:
        return Decision(project)
    return _move(
        project, Phase.CANCELLED, now, act.remove_services(project.id), last_error="cancelled"
    )


def plan_delete(project: Project, *, now: float) -> Decision:
    """Cancel (if needed), remove every service, then delete the project record."""
    cancelled = plan_cancel(project, now=now)
    final = Action(ActionKind.DELETE_PROJECT, project.id)
    cleanup = act.remove_services(project.id)
    marked = cancelled.project.replace(deleting=True)
    return Decision(queue(marked, (cleanup, final)), (*cancelled.actions, cleanup, final))


def mark_restarted(project: Project, role: Role, *, now: float) -> Project:
    """Mark instance 0 of ``role`` as restarted at ``now``.

    The stopped instance's incarnation is retired (and its events are older than this mark),
    so its last will cannot fail the step that is redone.
    """
    key = f"{ROLE_COMPONENTS[role].value}/{act.service_name(project.id, role)}-0"
    mark = incarnations.restarted(
        project.components.get(key), at=dt.datetime.fromtimestamp(now, dt.UTC).isoformat()
    )
    return project.replace(components={**project.components, key: mark})


def plan_lost_services(project: Project, *, now: float) -> Decision:
    """The manager restarted and its backend lost the project's services (local processes).

    Steps that are safe to repeat are redone (building, building the model, serving); a
    project that was deploying or training fails with a reason, since its data and Flower
    session are gone. Submitted and terminal projects are unchanged.
    """
    phase = project.phase
    if project.terminal or phase is Phase.SUBMITTED:
        return Decision(project)
    redo: Mapping[Phase, tuple[Action, Role]] = {
        Phase.BUILDING: (act.build_images(project.id), Role.BUILDER),
        Phase.POST_TRAINING: (Action(ActionKind.BUILD_MODEL_IMAGE, project.id),
                              Role.MODEL_BUILDER),
        Phase.SERVING: (Action(ActionKind.DEPLOY_INFERENCE, project.id), Role.INFERENCE_SERVER),
    }
    if phase in redo:
        action, role = redo[phase]
        marked = mark_restarted(project, role, now=now)
        return decide(marked, (action,))
    return fail(
        project,
        f"the manager restarted while the project was {phase.value}; the local backend "
        "cannot re-adopt the processes of the previous manager (they were stopped)",
        now,
    )
