"""ProjectStore on MongoDB (or any server speaking its wire protocol, e.g. nx-27017).

Collections: ``projects`` (optimistic concurrency on ``version``, event counter ``event_seq``),
``events`` (unique ``(project_id, seq)`` and unique ``event_id``), ``rejected_events`` and
``services`` (deployment records). Every document carries ``schema_version``.

Every database call runs inside :func:`_translated`: an unreachable database becomes
``BackendUnavailableError`` (503) and a document BSON cannot encode (an integer beyond 64 bits,
a key with NUL, ``.`` or a leading ``$``, a document over 16 MiB) becomes ``UnstorableError``
(422) saying what to change, so no driver error reaches a caller unmapped.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection as Container
from collections.abc import Iterator, Mapping
from typing import Any

import bson.errors
import pymongo
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DocumentTooLarge, DuplicateKeyError, PyMongoError

from flops_manager.adapters.indexed_query import indexable
from flops_manager.lifecycle.state import SCHEMA_VERSION, Phase, Project
from flops_manager.ports.cursor import Cursor
from flops_manager.ports.errors import (
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    UnstorableError,
)
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import (
    ABSENT,
    REQUESTED,
    Page,
    RejectedEvent,
    ServiceRecord,
    StoredEvent,
)

UNSTORABLE_HINT = (
    "keep integers within the signed 64-bit range, keys non-empty and free of NUL, '.' and a "
    "leading '$', and the whole request well below 16 MiB"
)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Map driver errors to port errors (``DuplicateKeyError`` is left to the caller)."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except (bson.errors.BSONError, OverflowError) as exc:  # DocumentTooLarge is a BSONError
        raise UnstorableError(
            f"the request cannot be stored: {exc}; {UNSTORABLE_HINT}",
            details={"reason": type(exc).__name__},
        ) from None
    except PyMongoError as exc:
        raise BackendUnavailableError(f"database unavailable: {exc}") from None


class MongoProjectStore(ProjectStore):
    """Stores projects, events and service records in database ``db_name``.

    Parameters
    ----------
    url
        MongoDB connection string, e.g. ``mongodb://127.0.0.1:27017``.
    db_name
        Database name.
    timeout_ms
        Server selection timeout.
    """

    def __init__(self, url: str, *, db_name: str = "flops", timeout_ms: int = 3000) -> None:
        self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, tz_aware=False
        )
        db = self._client[db_name]
        self._projects = db["projects"]
        self._events = db["events"]
        self._rejected = db["rejected_events"]
        self._services = db["services"]
        self._initialised = False

    def _init(self) -> None:
        if self._initialised:
            return
        with _translated():
            self._projects.create_index([("owner", 1), ("created_at", -1)])
            self._projects.create_index([("needs_work", 1)])
            self._events.create_index([("project_id", 1), ("seq", 1)], unique=True)
            self._events.create_index([("event_id", 1)], unique=True)
            self._services.create_index([("owner", 1), ("kind", 1), ("created_at", 1)])
            self._rejected.create_index([("project_id", 1), ("received_at", 1)])
        self._initialised = True

    def _guard(self) -> None:
        self._init()

    def create_project(self, project: Project) -> Project:  # noqa: D102
        self._guard()
        stored = project.replace(version=1)
        doc = stored.to_doc()
        doc["event_seq"] = 0
        with _translated():
            try:
                self._projects.insert_one(doc)
            except DuplicateKeyError:
                raise ConflictError(f"project {project.id} already exists") from None
        return stored

    def get_project(self, project_id: str, *, owner: str | None = None) -> Project:  # noqa: D102
        self._guard()
        query: dict[str, Any] = {"_id": project_id}
        if owner is not None:
            query["owner"] = owner
        with _translated():
            doc = self._projects.find_one(query)
        if doc is None:
            raise NotFoundError(f"project {project_id} not found")
        return Project.from_doc(doc)

    def save_project(self, project: Project, *, expected_version: int) -> Project:  # noqa: D102
        self._guard()
        stored = project.replace(version=expected_version + 1)
        doc = stored.to_doc()
        doc.pop("_id")
        with _translated():
            result = self._projects.update_one(
                {"_id": project.id, "version": expected_version}, {"$set": doc}
            )
            if result.matched_count == 1:
                return stored
            exists = _exists(self._projects, project.id)
        if not exists:
            raise NotFoundError(f"project {project.id} not found")
        raise ConflictError(f"project {project.id} was changed concurrently")

    def list_projects(  # noqa: D102
        self, *, owner: str, phase: Phase | None = None, page: int = 1, page_size: int = 20
    ) -> Page[Project]:
        self._guard()
        query = _listing_query(owner, phase)
        with _translated():
            total = _count(self._projects, query)
            cursor = (
                self._projects.find(query)
                .sort([("created_at", -1), ("_id", -1)])
                .skip((page - 1) * page_size)
                .limit(page_size)
            )
            items = [Project.from_doc(d) for d in cursor]
        return Page(items=items, total=total)

    def list_projects_after(  # noqa: D102
        self, *, owner: str, phase: Phase | None = None, after: Cursor | None, limit: int
    ) -> list[Project]:
        self._guard()
        query = _listing_query(owner, phase)
        if after is not None:
            # created_at <= cursor, then the cursor's tie (the cursor's own project, usually)
            # dropped here: an $or or an _id range would be filtered outside nx-27017's SQL
            # tier (a full scan), this is one query on the (owner, created_at) index.
            query["created_at"] = {"$lte": after.created_at}
        skipped = 1
        while True:
            with _translated():
                cursor = self._projects.find(query).sort([("created_at", -1), ("_id", -1)])
                docs = list(cursor.limit(limit + skipped))
            kept = [
                d for d in docs if after is None or after.precedes(d["created_at"], str(d["_id"]))
            ]
            if len(kept) >= limit or len(docs) < limit + skipped:
                return [Project.from_doc(d) for d in kept[:limit]]
            skipped *= 2  # more ties with the cursor than expected: read further

    def list_projects_needing_work(self) -> list[Project]:  # noqa: D102
        self._guard()
        with _translated():
            return [
                Project.from_doc(d)
                for d in self._projects.find(indexable({"needs_work": True}))
            ]

    def delete_project(self, project_id: str) -> bool:  # noqa: D102
        self._guard()
        with _translated():
            self._events.delete_many(indexable({"project_id": project_id}))
            return self._projects.delete_one({"_id": project_id}).deleted_count == 1

    def append_event(  # noqa: D102
        self, project_id: str, event: dict[str, object], *, received_at: float
    ) -> StoredEvent | None:
        self._guard()
        event_id = str(event["event_id"])
        with _translated():
            if _exists(self._events, event_id):  # the event's id is its document's _id
                return None
            _check_size({"event": event})  # refuse before taking a sequence number
            counter = self._projects.find_one_and_update(
                {"_id": project_id},
                {"$inc": {"event_seq": 1}},
                projection={"event_seq": 1},
                return_document=ReturnDocument.AFTER,
            )
            if counter is None:
                raise NotFoundError(f"project {project_id} not found")
            seq = int(counter["event_seq"])
            try:
                self._events.insert_one(
                    {
                        "_id": event_id,
                        "event_id": event_id,
                        "project_id": project_id,
                        "seq": seq,
                        "event": event,
                        "received_at": received_at,
                        "schema_version": SCHEMA_VERSION,
                    }
                )
            except DuplicateKeyError:
                return None
        return StoredEvent(project_id, seq, dict(event), received_at)

    def list_events(  # noqa: D102
        self, project_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[StoredEvent]:
        self._guard()
        with _translated():
            cursor = (
                self._events.find(
                    indexable({"project_id": project_id, "seq": {"$gt": after_seq}})
                )
                .sort("seq", 1)
                .limit(limit)
            )
            return [
                StoredEvent(
                    d["project_id"], int(d["seq"]), dict(d["event"]), float(d["received_at"])
                )
                for d in cursor
            ]

    def count_events(self, project_id: str) -> int:  # noqa: D102
        self._guard()
        with _translated():
            return _count(self._events, indexable({"project_id": project_id}))

    def add_rejected_event(self, rejected: RejectedEvent) -> None:  # noqa: D102
        self._guard()
        with _translated():
            self._rejected.insert_one(
                {
                    "_id": rejected.id or uuid.uuid4().hex,
                    "topic": rejected.topic,
                    "payload": rejected.payload,
                    "reason": rejected.reason,
                    "received_at": rejected.received_at,
                    "project_id": rejected.project_id,
                    "schema_version": SCHEMA_VERSION,
                }
            )

    def list_rejected_events(  # noqa: D102
        self, *, limit: int = 100, project_id: str | None = None
    ) -> list[RejectedEvent]:
        self._guard()
        query = {} if project_id is None else {"project_id": project_id}
        with _translated():
            cursor = self._rejected.find(query).sort("received_at", 1).limit(limit)
            return [
                RejectedEvent(str(d["_id"]), d["topic"], d["payload"], d["reason"],
                              d["received_at"], d.get("project_id"))
                for d in cursor
            ]

    def put_service_record(self, record: ServiceRecord) -> ServiceRecord:  # noqa: D102
        self._guard()
        with _translated():
            self._services.replace_one({"_id": record.id}, _service_doc(record), upsert=True)
        return record

    def get_service_record(  # noqa: D102
        self, record_id: str, *, owner: str, kind: str
    ) -> ServiceRecord:
        self._guard()
        with _translated():
            doc = self._services.find_one({"_id": record_id, "owner": owner, "kind": kind})
        if doc is None:
            raise NotFoundError(f"{kind} {record_id} not found")
        return _service_record(doc)

    def list_service_records(  # noqa: D102
        self, *, owner: str, kind: str, project_id: str | None = None
    ) -> list[ServiceRecord]:
        self._guard()
        query: dict[str, Any] = {"owner": owner, "kind": kind}
        if project_id is not None:
            query["project_id"] = project_id
        return self._find_services(query)

    def update_service_record(  # noqa: D102
        self, record_id: str, changes: Mapping[str, Any]
    ) -> bool:
        self._guard()
        with _translated():
            result = self._services.update_one({"_id": record_id}, {"$set": dict(changes)})
        return result.matched_count == 1

    def list_service_records_needing_work(  # noqa: D102
        self, *, kinds: Container[str]
    ) -> list[ServiceRecord]:
        self._guard()
        return self._find_services({
            "kind": {"$in": sorted(kinds)},
            "$or": [{"desired": ABSENT}, {"state": REQUESTED}],
        })

    def _find_services(self, query: dict[str, Any]) -> list[ServiceRecord]:
        with _translated():
            cursor = self._services.find(indexable(query)).sort([("created_at", 1), ("_id", 1)])
            return [_service_record(d) for d in cursor]

    def delete_service_record(self, record_id: str) -> bool:  # noqa: D102
        self._guard()
        with _translated():
            return self._services.delete_one({"_id": record_id}).deleted_count == 1

    def ping(self) -> None:  # noqa: D102
        try:
            self._client.admin.command("ping")
        except PyMongoError as exc:
            raise BackendUnavailableError(f"database unreachable: {exc}") from None

    def close(self) -> None:  # noqa: D102
        self._client.close()


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""MongoDB's limit on one document."""


def _listing_query(owner: str, phase: Phase | None) -> dict[str, Any]:
    """The filter of a project listing: the owner's projects not being deleted."""
    query: dict[str, Any] = {"owner": owner, "deleting": False}
    if phase is not None:
        query["phase"] = phase.value
    return indexable(query)


def _check_size(doc: dict[str, Any]) -> None:
    """Raise the driver's encoding errors for ``doc`` now (also for one over 16 MiB)."""
    size = len(bson.encode(doc))
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(f"the document takes {size} bytes, over {MAX_DOCUMENT_BYTES}")


def _exists(collection: Collection[dict[str, Any]], doc_id: str) -> bool:
    """Whether a document with this ``_id`` exists (a primary-key lookup)."""
    return collection.find_one({"_id": doc_id}, projection={"_id": 1}) is not None


def _count(collection: Collection[dict[str, Any]], query: dict[str, Any]) -> int:
    """Count the documents matching ``query`` by reading their ids.

    ``count_documents`` is an aggregation: wire-protocol servers such as nx-27017 (the
    embedded default) run it outside their SQL tier, blocking every other request for up to
    hundreds of milliseconds; reading ids is an indexed query everywhere.
    """
    return sum(1 for _ in collection.find(query, projection={"_id": 1}))


def _service_doc(record: ServiceRecord) -> dict[str, Any]:
    return {
        "_id": record.id,
        "owner": record.owner,
        "kind": record.kind,
        "name": record.name,
        "request": record.request,
        "created_at": record.created_at,
        "project_id": record.project_id,
        "state": record.state,
        "message": record.message,
        "address": record.address,
        "desired": record.desired,
        "attempts": record.attempts,
        "retry_at": record.retry_at,
        "schema_version": SCHEMA_VERSION,
    }


def _service_record(doc: dict[str, Any]) -> ServiceRecord:
    return ServiceRecord(
        id=str(doc["_id"]),
        owner=doc["owner"],
        kind=doc["kind"],
        name=doc["name"],
        request=dict(doc["request"]),
        created_at=float(doc["created_at"]),
        project_id=doc.get("project_id"),
        state=doc.get("state", "requested"),
        message=doc.get("message"),
        address=doc.get("address"),
        desired=doc.get("desired", "present"),
        attempts=int(doc.get("attempts", 0)),
        retry_at=float(doc.get("retry_at", 0.0)),
    )
