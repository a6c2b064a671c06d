"""Drift: services a project needs that disappeared behind FLOps' back (pure, no I/O).

The project record holds the desired state: ``Project.services`` lists the roles whose services
the worker created and did not remove since. Each pass the worker observes those services and
passes what is gone (whole services, or some of their instances) to :func:`plan_drift`, which
either waits (``grace_s``: a one-shot service that just finished may be removed with its
completion event still in flight), recreates the role's services by queueing its creating
action again (where the phase allows it and ``max_repairs`` is not used up), or fails the
project naming what disappeared. A drifted project therefore ends or heals within
``grace_s`` plus one reconcile pass, never by waiting for its phase timeout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from flops_manager.lifecycle.actions import ROLES_OF_KIND, Action, ActionKind, Role
from flops_manager.lifecycle.planner import Decision, fail, mark_restarted, queue
from flops_manager.lifecycle.state import Phase, Project, ServiceWatch


@dataclasses.dataclass(frozen=True)
class DriftPolicy:
    """How long a disappearance is tolerated, and how often a role is recreated."""

    grace_s: float = 10.0
    max_repairs: int = 3


CREATED_BY: Mapping[Role, ActionKind] = {
    role: kind for kind, roles in ROLES_OF_KIND.items() for role in roles
}
"""The action that creates each role's services."""

REPAIRABLE: Mapping[Phase, frozenset[Role]] = {
    Phase.BUILDING: frozenset({Role.BUILDER}),
    Phase.DEPLOYING: frozenset({Role.LEARNERS}),
    Phase.TRAINING: frozenset({Role.LEARNERS}),
    Phase.POST_TRAINING: frozenset({Role.MODEL_BUILDER}),
    Phase.SERVING: frozenset({Role.INFERENCE_SERVER}),
}
"""Roles whose services may be recreated in each phase.

Builders are repeatable (their results are cached by content); a recreated learner claims its
own data partition again and joins the next round; an inference server is stateless. The
aggregators hold the Flower session, the data server the uploaded data and the mock data
provider uploads once: their loss fails the project.
"""

_SINGLE_INSTANCE = frozenset({Role.BUILDER, Role.MODEL_BUILDER, Role.INFERENCE_SERVER})
"""Repairable roles whose old instance's late events (its last will) must not fail the redo."""


def record_created(project: Project, roles: Iterable[Role]) -> Project:
    """Record that the services of ``roles`` exist now (a repair keeps its count)."""
    services = dict(project.services)
    for role in roles:
        watch = services.get(role.value, ServiceWatch())
        services[role.value] = dataclasses.replace(watch, missing_since=None)
    return project.replace(services=services)


def record_removed(project: Project, roles: Iterable[Role]) -> Project:
    """Record that FLOps removed the services of ``roles``."""
    gone = {role.value for role in roles}
    return project.replace(services={r: w for r, w in project.services.items() if r not in gone})


def _busy_roles(project: Project) -> set[Role]:
    """Roles a pending action is about to create or remove (their absence is expected)."""
    busy: set[Role] = set()
    for pending in project.pending:
        action = Action.from_dict(pending.action)
        if action.kind in (ActionKind.REMOVE_SERVICES, ActionKind.DELETE_PROJECT):
            busy.update(action.roles or Role)
        else:
            busy.update(ROLES_OF_KIND.get(action.kind, ()))
    return busy


def watched(project: Project) -> tuple[Role, ...]:
    """Roles whose services must exist now: created, not removed, no action pending on them."""
    if project.terminal:
        return ()
    busy = _busy_roles(project)
    return tuple(r for r in (Role(v) for v in project.services) if r not in busy)


def plan_drift(
    project: Project, observed: Mapping[Role, tuple[str, ...]], *, now: float,
    policy: DriftPolicy,
) -> Decision:
    """Compare desired with observed services and take the next step.

    Parameters
    ----------
    observed
        For each role the worker could observe: the services or instances of it that are
        gone (empty: all present). Roles left out were not observable this pass (the
        orchestrator was unavailable) and keep their record.
    now
        Current time (epoch seconds).
    policy
        Grace period and repair budget.

    Returns
    -------
    Decision
        Unchanged, the drift record updated, the creating actions of repairable roles queued
        again, or the project failed naming the services that disappeared.
    """
    services = dict(project.services)
    repairs: list[Role] = []
    for role in watched(project):
        if role not in observed:
            continue
        watch, gone = services[role.value], observed[role]
        if not gone or watch.missing_since is None:
            since = now if gone else None
            services[role.value] = dataclasses.replace(watch, missing_since=since)
            continue
        if now - watch.missing_since < policy.grace_s:
            continue
        if role not in REPAIRABLE.get(project.phase, frozenset()):
            return fail(project.replace(services=services),
                        f"{', '.join(gone)} disappeared while {project.phase.value} (removed "
                        "outside FLOps); it cannot be recreated in this phase", now)
        if watch.repairs >= policy.max_repairs:
            return fail(project.replace(services=services),
                        f"{', '.join(gone)} disappeared again while {project.phase.value} "
                        f"(recreated {watch.repairs} times already)", now)
        services[role.value] = ServiceWatch(missing_since=None, repairs=watch.repairs + 1)
        repairs.append(role)
    updated = project.replace(services=services)
    for role in repairs:
        if role in _SINGLE_INSTANCE:
            updated = mark_restarted(updated, role, now=now)
    actions = tuple(Action(CREATED_BY[role], project.id) for role in repairs)
    return Decision(queue(updated, actions), actions)
