"""The ProjectStore port: projects, their events and user-requested service records."""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from flops_manager.lifecycle.state import Phase, Project
from flops_manager.ports.cursor import Cursor
from flops_manager.ports.records import (
    ABSENT,
    OBSERVED_FIELDS,
    Page,
    RejectedEvent,
    ServiceRecord,
    StoredEvent,
)


class ProjectStore(abc.ABC):
    """Persistence of projects, events and service records.

    Constraints
    -----------
    * ``create_project`` MUST fail with ``ConflictError`` if the id exists.
    * ``save_project`` MUST fail with ``ConflictError`` unless the stored ``version`` equals
      ``expected_version``; on success the stored version is ``expected_version + 1``.
    * ``get_project`` with ``owner`` MUST raise ``NotFoundError`` for another owner's project.
    * ``append_event`` MUST give each accepted event of a project a unique, increasing ``seq``
      and MUST return ``None`` (storing nothing) for an ``event_id`` seen before.
    """

    @abc.abstractmethod
    def create_project(self, project: Project) -> Project:
        """Store a new project (version 1) and return it."""

    @abc.abstractmethod
    def get_project(self, project_id: str, *, owner: str | None = None) -> Project:
        """Return the project; raise ``NotFoundError`` if missing or not owned by ``owner``."""

    @abc.abstractmethod
    def save_project(self, project: Project, *, expected_version: int) -> Project:
        """Replace the project if its stored version is ``expected_version``; return it."""

    @abc.abstractmethod
    def list_projects(
        self, *, owner: str, phase: Phase | None = None, page: int = 1, page_size: int = 20
    ) -> Page[Project]:
        """Return the owner's projects, newest first, excluding ones being deleted."""

    @abc.abstractmethod
    def list_projects_after(
        self, *, owner: str, phase: Phase | None = None, after: Cursor | None, limit: int
    ) -> list[Project]:
        """Return up to ``limit`` of the owner's projects older than ``after``, newest first.

        Keyset pagination: ``after`` is the ``(created_at, id)`` of the previous page's last
        project (``None``: the newest); projects being deleted are excluded; nothing is counted.
        """

    @abc.abstractmethod
    def list_projects_needing_work(self) -> list[Project]:
        """Return every project the reconciler must still look at."""

    @abc.abstractmethod
    def delete_project(self, project_id: str) -> bool:
        """Delete the project and its events; return whether it existed."""

    @abc.abstractmethod
    def append_event(
        self, project_id: str, event: dict[str, object], *, received_at: float
    ) -> StoredEvent | None:
        """Store an accepted event with the next sequence number (``None`` for a duplicate)."""

    @abc.abstractmethod
    def list_events(
        self, project_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[StoredEvent]:
        """Return the project's events with ``seq > after_seq`` in sequence order."""

    @abc.abstractmethod
    def count_events(self, project_id: str) -> int:
        """Return how many events the project has."""

    @abc.abstractmethod
    def add_rejected_event(self, rejected: RejectedEvent) -> None:
        """Keep a message that failed validation."""

    @abc.abstractmethod
    def list_rejected_events(
        self, *, limit: int = 100, project_id: str | None = None
    ) -> list[RejectedEvent]:
        """Return rejected messages (only ``project_id``'s when given), oldest first."""

    @abc.abstractmethod
    def put_service_record(self, record: ServiceRecord) -> ServiceRecord:
        """Insert or replace a service record."""

    @abc.abstractmethod
    def get_service_record(self, record_id: str, *, owner: str, kind: str) -> ServiceRecord:
        """Return the record; raise ``NotFoundError`` if missing, of another kind or owner."""

    @abc.abstractmethod
    def list_service_records(
        self, *, owner: str, kind: str, project_id: str | None = None
    ) -> list[ServiceRecord]:
        """Return the owner's records of ``kind`` (optionally of one project), oldest first."""

    @abc.abstractmethod
    def update_service_record(self, record_id: str, changes: Mapping[str, Any]) -> bool:
        """Set only the fields in ``changes`` of a record; return whether it exists."""

    def observe_service_record(self, record: ServiceRecord) -> bool:
        """Store ``record``'s observed fields (``OBSERVED_FIELDS``) only; whether it exists.

        The desired state stays as stored, so a concurrent removal request is never lost.
        """
        return self.update_service_record(
            record.id, {name: getattr(record, name) for name in OBSERVED_FIELDS}
        )

    def request_service_removal(self, record_id: str) -> bool:
        """Set the record's desired state to ``absent``; return whether it exists."""
        return self.update_service_record(record_id, {"desired": ABSENT})

    @abc.abstractmethod
    def list_service_records_needing_work(self, *, kinds: Collection[str]) -> list[ServiceRecord]:
        """Return every owner's records of ``kinds`` whose service must be created or removed."""

    @abc.abstractmethod
    def delete_service_record(self, record_id: str) -> bool:
        """Delete a record; return whether it existed."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``BackendUnavailableError`` if the store cannot be reached."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (default: nothing)."""


def owner_projects(store: ProjectStore, owner: str, *, page_size: int = 200) -> Iterator[Project]:
    """Every project of ``owner`` (newest first), read page by page."""
    after: Cursor | None = None
    while True:
        page = store.list_projects_after(owner=owner, after=after, limit=page_size)
        yield from page
        if len(page) < page_size:
            return
        after = Cursor(page[-1].created_at, page[-1].id)
