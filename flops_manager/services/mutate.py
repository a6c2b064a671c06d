"""Read-modify-write of a project with optimistic concurrency and retry."""

from __future__ import annotations

from collections.abc import Callable

from flops_contracts.events import Component, Event, EventType
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.ports.errors import ConflictError
from flops_manager.ports.project_store import ProjectStore


def mutate_project(
    store: ProjectStore,
    project_id: str,
    change: Callable[[Project], Project],
    *,
    now: float,
    attempts: int = 20,
) -> Project:
    """Apply ``change`` to the stored project, retrying when another writer got there first.

    ``change`` must be pure (it may run several times). Nothing is written if it returns an
    unchanged project. A change of phase is also recorded as a ``phase_changed`` event of the
    manager, so a project's event list tells its whole story in order.

    Raises
    ------
    ConflictError
        If every attempt lost the race.
    NotFoundError
        If the project does not exist.
    """
    for _ in range(attempts):
        current = store.get_project(project_id)
        updated = change(current)
        if updated == current:
            return current
        try:
            saved = store.save_project(
                updated.replace(updated_at=now), expected_version=current.version
            )
        except ConflictError:
            continue
        if saved.phase is not current.phase:
            store.append_event(saved.id, phase_event(current, saved).to_dict(), received_at=now)
        return saved
    raise ConflictError(f"project {project_id} is being changed by too many writers; retry")


def phase_event(before: Project, after: Project) -> Event:
    """The manager's ``phase_changed`` event for a saved transition (id unique per version)."""
    data: dict[str, object] = {"from": before.phase.value, "to": after.phase.value}
    if after.last_error and after.last_error != before.last_error:
        data["reason"] = after.last_error
    return Event(
        project_id=after.id,
        component=Component.MANAGER,
        instance="manager",
        event=EventType.PHASE_CHANGED,
        data=data,
        event_id=f"{after.id}-v{after.version}",
    )


def record_missing_phase_change(store: ProjectStore, project: Project, *, now: float) -> bool:
    """Store the ``phase_changed`` event of the project's current phase if it is missing.

    A manager killed between saving a transition and storing its event loses that event; the
    restarted manager calls this so the event list still tells every phase change. Returns
    whether an event was added (the deterministic event id makes repeats harmless).
    """
    recorded = [e.event for e in store.list_events(project.id, limit=100_000)
                if e.event.get("event") == EventType.PHASE_CHANGED.value]
    last = str(recorded[-1]["data"].get("to")) if recorded else Phase.SUBMITTED.value
    if last == project.phase.value:
        return False
    event = phase_event(project.replace(phase=Phase(last), last_error=None), project)
    return store.append_event(project.id, event.to_dict(), received_at=now) is not None
