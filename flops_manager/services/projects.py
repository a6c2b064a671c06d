"""Project use cases: create, read, list, cancel, delete, events."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flops_contracts.errors import ErrorCode, FlopsError
from flops_contracts.spec import parse_spec
from flops_manager.lifecycle import planner
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.nodes.project_placement import (
    mock_error,
    node_learner_default,
    place_project,
    uses_nodes,
)
from flops_manager.nodes.service import NodeService
from flops_manager.ports.cursor import Cursor, decode_cursor, encode_cursor
from flops_manager.ports.errors import InvalidTransitionError, NotFoundError
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import Page, RejectedEvent, StoredEvent
from flops_manager.services.clock import Clock, IdFactory, new_project_id, system_clock
from flops_manager.services.mutate import mutate_project
from flops_manager.services.repo_url import (
    check_local_repository,
    check_ref,
    check_repository_url,
)


def _invalid(errors: dict[str, list[str]]) -> FlopsError:
    summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
    return FlopsError(
        f"invalid project: {summary}", code=ErrorCode.INVALID_SPEC, details={"errors": errors}
    )


def validate_request(
    spec: Mapping[str, Any], repository: Mapping[str, Any], *, allow_local: bool
) -> dict[str, Any]:
    """Validate a create request; return the normalised spec.

    Raises
    ------
    FlopsError
        Code ``invalid_spec``; ``details["errors"]`` maps ``spec.<field>`` / ``repository.<field>``
        to messages.
    """
    errors: dict[str, list[str]] = {}
    normalised: dict[str, Any] = {}
    try:
        normalised = parse_spec(spec).model_dump(mode="json")
    except FlopsError as exc:
        for field, messages in exc.details.get("errors", {}).items():
            errors[f"spec.{field}"] = list(messages)
    url = str(repository.get("url", ""))
    url_problem = check_repository_url(url, allow_local=allow_local) or (
        check_local_repository(url) if allow_local else None)
    if url_problem:
        errors["repository.url"] = [url_problem]
    ref = repository.get("ref")
    if ref is not None and (problem := check_ref(str(ref))):
        errors["repository.ref"] = [problem]
    if errors:
        raise _invalid(errors)
    return normalised


def next_cursor(items: Sequence[Project], *, more: bool) -> str | None:
    """The cursor of the page after ``items`` (newest first); ``None`` without ``more``."""
    if not more or not items:
        return None
    return encode_cursor(Cursor(items[-1].created_at, items[-1].id))


class ProjectService:
    """Project use cases over a :class:`ProjectStore`."""

    def __init__(
        self,
        store: ProjectStore,
        *,
        allow_local_repos: bool,
        clock: Clock = system_clock,
        new_id: IdFactory = new_project_id,
        nodes: NodeService | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """Use cases over ``store``.

        ``on_change`` runs after a project was created, cancelled or marked for deletion (the
        manager wakes its reconciler there: no wait for its interval).
        """
        self.on_change = on_change or _nothing
        self.store = store
        self.nodes = nodes
        self.allow_local_repos = allow_local_repos
        self.clock = clock
        self.new_id = new_id

    def create(
        self, *, owner: str, spec: Mapping[str, Any], repository: Mapping[str, Any]
    ) -> Project:
        """Validate and store a new project in phase ``submitted``."""
        normalised = validate_request(node_learner_default(spec), repository,
                                      allow_local=self.allow_local_repos)
        training = normalised["training"]
        total = training["cycles"] if training["mode"] == "hierarchical" else training["rounds"]
        now = self.clock()
        project_id = self.new_id()
        placement: list[dict[str, Any]] = []
        learner_tokens: dict[str, str] = {}
        mock = normalised.get("mock_data") is not None
        if mock and self.nodes is None:  # mock data is written to nodes: there are none here
            raise mock_error([], normalised, now=now)
        if self.nodes is not None and (mock or uses_nodes(normalised)):
            placement, learner_tokens, normalised = place_project(
                self.nodes, self.nodes.nodes(owner), owner=owner, project_id=project_id,
                raw_spec=spec, spec=normalised, now=now)
        project = Project(
            id=project_id,
            owner=owner,
            spec=normalised,
            placement=tuple(placement),
            repository={"url": repository["url"], "ref": repository.get("ref")},
            created_at=now,
            updated_at=now,
            phase_since=now,
            total_rounds=int(total),
            secrets=learner_tokens,
        )
        created = self.store.create_project(project)
        self.on_change()
        return created

    def get(self, project_id: str, *, owner: str) -> Project:
        """Return the owner's project (``NotFoundError`` otherwise, also while deleting)."""
        project = self.store.get_project(project_id, owner=owner)
        if project.deleting:
            raise NotFoundError(f"project {project_id} not found")
        return project

    def list_projects(
        self, *, owner: str, phase: Phase | None, page: int, page_size: int
    ) -> Page[Project]:
        """Return one page of the owner's projects, newest first."""
        return self.store.list_projects(owner=owner, phase=phase, page=page, page_size=page_size)

    def list_after(
        self, *, owner: str, phase: Phase | None, cursor: str | None, page_size: int
    ) -> tuple[list[Project], str | None]:
        """Return one keyset page of the owner's projects, newest first, and the next cursor.

        ``cursor`` is ``None`` for the newest page or a ``next_cursor`` of an earlier page; the
        next cursor is ``None`` on the last page. Nothing is counted, so every page costs the
        same however many projects are stored.
        """
        after = decode_cursor(cursor) if cursor else None
        found = self.store.list_projects_after(
            owner=owner, phase=phase, after=after, limit=page_size + 1
        )
        items = found[:page_size]
        return items, next_cursor(items, more=len(found) > page_size)

    def cancel(self, project_id: str, *, owner: str) -> Project:
        """Cancel a running project; the reconciler removes its services."""
        project = self.get(project_id, owner=owner)
        if project.terminal:
            raise InvalidTransitionError(
                f"project {project_id} is already {project.phase.value}; nothing to cancel"
            )
        now = self.clock()
        cancelled = mutate_project(
            self.store,
            project_id,
            lambda p: planner.plan_cancel(p, now=now).project,
            now=now,
        )
        self.on_change()
        return cancelled

    def delete(self, project_id: str, *, owner: str) -> Project:
        """Cancel if running, then let the reconciler remove services and the record."""
        self.get(project_id, owner=owner)
        now = self.clock()
        marked = mutate_project(
            self.store,
            project_id,
            lambda p: planner.plan_delete(p, now=now).project,
            now=now,
        )
        self.on_change()
        return marked

    def rejected_events(self, project_id: str, *, owner: str, limit: int) -> list[RejectedEvent]:
        """Return the messages refused for the project (oldest first)."""
        self.get(project_id, owner=owner)
        return self.store.list_rejected_events(project_id=project_id, limit=limit)

    def events(
        self, project_id: str, *, owner: str, after_seq: int, limit: int
    ) -> tuple[list[StoredEvent], int]:
        """Return events after ``after_seq`` (sequence order) and the project's event count."""
        self.get(project_id, owner=owner)
        items = self.store.list_events(project_id, after_seq=after_seq, limit=limit)
        return items, self.store.count_events(project_id)


def _nothing() -> None:
    """No reconciler to wake."""
