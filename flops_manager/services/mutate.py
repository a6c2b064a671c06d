"""Read-modify-write of a project with optimistic concurrency and retry."""

from __future__ import annotations

from collections.abc import Callable

from flops_manager.lifecycle.state import Project
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
    unchanged project.

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
            return store.save_project(
                updated.replace(updated_at=now), expected_version=current.version
            )
        except ConflictError:
            continue
    raise ConflictError(f"project {project_id} is being changed by too many writers; retry")
