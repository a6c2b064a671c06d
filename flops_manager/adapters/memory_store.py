"""In-memory ProjectStore (tests and throw-away runs); thread-safe behind one lock."""

from __future__ import annotations

import copy
import heapq
import threading
from collections.abc import Collection, Mapping
from typing import Any

from flops_manager.lifecycle.state import Phase, Project
from flops_manager.ports.cursor import Cursor
from flops_manager.ports.errors import ConflictError, NotFoundError
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import (
    Page,
    RejectedEvent,
    ServiceRecord,
    StoredEvent,
)


class MemoryProjectStore(ProjectStore):
    """Keeps everything in dictionaries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[str, Project] = {}
        self._events: dict[str, list[StoredEvent]] = {}
        self._event_ids: set[str] = set()
        self._rejected: list[RejectedEvent] = []
        self._services: dict[str, ServiceRecord] = {}

    def create_project(self, project: Project) -> Project:  # noqa: D102
        with self._lock:
            if project.id in self._projects:
                raise ConflictError(f"project {project.id} already exists")
            stored = project.replace(version=1)
            self._projects[project.id] = stored
            return stored

    def get_project(self, project_id: str, *, owner: str | None = None) -> Project:  # noqa: D102
        with self._lock:
            found = self._projects.get(project_id)
        if found is None or (owner is not None and found.owner != owner):
            raise NotFoundError(f"project {project_id} not found")
        return found

    def save_project(self, project: Project, *, expected_version: int) -> Project:  # noqa: D102
        with self._lock:
            current = self._projects.get(project.id)
            if current is None:
                raise NotFoundError(f"project {project.id} not found")
            if current.version != expected_version:
                raise ConflictError(f"project {project.id} was changed concurrently")
            stored = project.replace(version=expected_version + 1)
            self._projects[project.id] = stored
            return stored

    def list_projects(  # noqa: D102
        self, *, owner: str, phase: Phase | None = None, page: int = 1, page_size: int = 20
    ) -> Page[Project]:
        mine = self._listed(owner, phase)
        mine.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        start = (page - 1) * page_size
        return Page(items=mine[start : start + page_size], total=len(mine))

    def list_projects_after(  # noqa: D102
        self, *, owner: str, phase: Phase | None = None, after: Cursor | None, limit: int
    ) -> list[Project]:
        older = [
            p
            for p in self._listed(owner, phase)
            if after is None or after.precedes(p.created_at, p.id)
        ]
        return heapq.nlargest(limit, older, key=lambda p: (p.created_at, p.id))

    def _listed(self, owner: str, phase: Phase | None) -> list[Project]:
        """The owner's projects a listing shows (not being deleted, optionally one phase)."""
        with self._lock:
            return [
                p
                for p in self._projects.values()
                if p.owner == owner and not p.deleting and (phase is None or p.phase is phase)
            ]

    def list_projects_needing_work(self) -> list[Project]:  # noqa: D102
        with self._lock:
            return [p for p in self._projects.values() if p.needs_work]

    def delete_project(self, project_id: str) -> bool:  # noqa: D102
        with self._lock:
            existed = self._projects.pop(project_id, None) is not None
            for stored in self._events.pop(project_id, []):
                self._event_ids.discard(stored.event_id)
            return existed

    def append_event(  # noqa: D102
        self, project_id: str, event: dict[str, object], *, received_at: float
    ) -> StoredEvent | None:
        with self._lock:
            event_id = str(event["event_id"])
            if event_id in self._event_ids:
                return None
            events = self._events.setdefault(project_id, [])
            stored = StoredEvent(project_id, len(events) + 1, copy.deepcopy(event), received_at)
            events.append(stored)
            self._event_ids.add(event_id)
            return stored

    def list_events(  # noqa: D102
        self, project_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[StoredEvent]:
        with self._lock:
            events = list(self._events.get(project_id, []))
        return [e for e in events if e.seq > after_seq][:limit]

    def count_events(self, project_id: str) -> int:  # noqa: D102
        with self._lock:
            return len(self._events.get(project_id, []))

    def add_rejected_event(self, rejected: RejectedEvent) -> None:  # noqa: D102
        with self._lock:
            self._rejected.append(rejected)

    def list_rejected_events(  # noqa: D102
        self, *, limit: int = 100, project_id: str | None = None
    ) -> list[RejectedEvent]:
        with self._lock:
            return [r for r in self._rejected
                    if project_id is None or r.project_id == project_id][:limit]

    def put_service_record(self, record: ServiceRecord) -> ServiceRecord:  # noqa: D102
        with self._lock:
            self._services[record.id] = record
            return record

    def get_service_record(  # noqa: D102
        self, record_id: str, *, owner: str, kind: str
    ) -> ServiceRecord:
        with self._lock:
            found = self._services.get(record_id)
        if found is None or found.owner != owner or found.kind != kind:
            raise NotFoundError(f"{kind} {record_id} not found")
        return found

    def list_service_records(  # noqa: D102
        self, *, owner: str, kind: str, project_id: str | None = None
    ) -> list[ServiceRecord]:
        with self._lock:
            found = [
                r
                for r in self._services.values()
                if r.owner == owner
                and r.kind == kind
                and (project_id is None or r.project_id == project_id)
            ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def update_service_record(  # noqa: D102
        self, record_id: str, changes: Mapping[str, Any]
    ) -> bool:
        with self._lock:
            found = self._services.get(record_id)
            if found is None:
                return False
            self._services[record_id] = found.replace(**changes)
            return True

    def list_service_records_needing_work(  # noqa: D102
        self, *, kinds: Collection[str]
    ) -> list[ServiceRecord]:
        with self._lock:
            found = [r for r in self._services.values() if r.needs_work and r.kind in kinds]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def delete_service_record(self, record_id: str) -> bool:  # noqa: D102
        with self._lock:
            return self._services.pop(record_id, None) is not None

    def ping(self) -> None:  # noqa: D102
        return None
