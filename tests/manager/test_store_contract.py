from __future__ import annotations

import threading
import uuid

import pytest

from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.ports.cursor import Cursor
from flops_manager.ports.errors import ConflictError, NotFoundError, UnstorableError
from flops_manager.ports.project_store import ProjectStore
from flops_manager.ports.records import ABSENT, RejectedEvent, ServiceRecord
from flops_manager.services.mutate import mutate_project
from tests.fixtures.servers import NxServer


def project(pid: str | None = None, owner: str = "alice", created: float = 1.0) -> Project:
    return Project(id=pid or "p" + uuid.uuid4().hex[:16], owner=owner, spec={"a": 1},
                   repository={"url": "https://x/y", "ref": None}, created_at=created,
                   updated_at=created)


def event(eid: str) -> dict[str, object]:
    return {"event_id": eid, "event": "log", "data": {"k": [1, 2]}}


class StoreContract:
    __test__ = False

    def make_store(self) -> ProjectStore:
        raise NotImplementedError

    @pytest.fixture()
    def store(self) -> ProjectStore:
        return self.make_store()

    def test_create_get_roundtrip(self, store: ProjectStore) -> None:
        p = store.create_project(project("p1"))
        assert p.version == 1
        assert store.get_project("p1") == p
        assert store.get_project("p1", owner="alice") == p

    def test_duplicate_create_conflicts(self, store: ProjectStore) -> None:
        store.create_project(project("p1"))
        with pytest.raises(ConflictError):
            store.create_project(project("p1"))

    def test_other_owner_not_found(self, store: ProjectStore) -> None:
        store.create_project(project("p1"))
        with pytest.raises(NotFoundError):
            store.get_project("p1", owner="bob")
        with pytest.raises(NotFoundError):
            store.get_project("nope")

    def test_optimistic_concurrency(self, store: ProjectStore) -> None:
        p = store.create_project(project("p1"))
        saved = store.save_project(p.replace(phase=Phase.BUILDING), expected_version=1)
        assert saved.version == 2 and store.get_project("p1").phase is Phase.BUILDING
        with pytest.raises(ConflictError):
            store.save_project(p.replace(phase=Phase.FAILED), expected_version=1)

    def test_list_paginates_newest_first_and_filters(self, store: ProjectStore) -> None:
        for i in range(5):
            store.create_project(project(f"p{i}", created=float(i)))
        store.create_project(project("q", owner="bob"))
        first = store.list_projects(owner="alice", page=1, page_size=2)
        assert [p.id for p in first.items] == ["p4", "p3"] and first.total == 5
        third = store.list_projects(owner="alice", page=3, page_size=2)
        assert [p.id for p in third.items] == ["p0"]
        p2 = store.get_project("p2")
        store.save_project(p2.replace(phase=Phase.TRAINING), expected_version=p2.version)
        training = store.list_projects(owner="alice", phase=Phase.TRAINING)
        assert [p.id for p in training.items] == ["p2"]

    def test_keyset_pages_walk_every_project_once_newest_first(
        self, store: ProjectStore
    ) -> None:
        """Ties on created_at are broken by id, so a page boundary inside a tie loses nothing."""
        created = [5.0, 4.0, 4.0, 4.0, 3.0, 2.0, 2.0, 1.0]
        for i, at in enumerate(created):
            store.create_project(project(f"p{i}", created=at))
        store.create_project(project("q", owner="bob", created=9.0))
        gone = store.create_project(project("gone", created=6.0))
        store.save_project(gone.replace(deleting=True), expected_version=1)
        walked: list[str] = []
        after: Cursor | None = None
        while page := store.list_projects_after(owner="alice", after=after, limit=3):
            walked += [p.id for p in page]
            after = Cursor(page[-1].created_at, page[-1].id)
        expected = sorted(store.list_projects(owner="alice", page_size=20).items,
                          key=lambda p: (p.created_at, p.id), reverse=True)
        assert walked == [p.id for p in expected] and len(walked) == 8
        assert walked[:4] == ["p0", "p3", "p2", "p1"]
        p2 = store.get_project("p2")
        store.save_project(p2.replace(phase=Phase.TRAINING), expected_version=p2.version)
        training = store.list_projects_after(owner="alice", phase=Phase.TRAINING, after=None,
                                             limit=5)
        assert [p.id for p in training] == ["p2"]

    def test_needing_work_and_delete(self, store: ProjectStore) -> None:
        a = store.create_project(project("a"))
        store.create_project(project("b"))
        store.save_project(a.replace(phase=Phase.COMPLETED), expected_version=1)
        assert {p.id for p in store.list_projects_needing_work()} == {"b"}
        assert store.delete_project("b") and not store.delete_project("b")

    def test_events_sequence_and_dedup(self, store: ProjectStore) -> None:
        store.create_project(project("p1"))
        first = store.append_event("p1", event("e1"), received_at=1.0)
        second = store.append_event("p1", event("e2"), received_at=2.0)
        assert first is not None and second is not None
        assert (first.seq, second.seq) == (1, 2)
        assert store.append_event("p1", event("e1"), received_at=3.0) is None
        assert [e.seq for e in store.list_events("p1")] == [1, 2]
        assert [e.event_id for e in store.list_events("p1", after_seq=1)] == ["e2"]
        assert store.list_events("p1")[0].event == event("e1")
        assert store.count_events("p1") == 2

    def test_concurrent_event_sequences_unique(self, store: ProjectStore) -> None:
        store.create_project(project("p1"))

        def add(n: int) -> None:
            for i in range(10):
                store.append_event("p1", event(f"e{n}-{i}"), received_at=1.0)

        threads = [threading.Thread(target=add, args=(n,)) for n in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seqs = [e.seq for e in store.list_events("p1", limit=1000)]
        assert seqs == list(range(1, 51))

    def test_concurrent_mutations_lose_nothing(self, store: ProjectStore) -> None:
        store.create_project(project("p1"))

        def bump(n: int) -> None:
            for i in range(5):
                def add_metric(p: Project, k: str = f"{n}-{i}") -> Project:
                    return p.replace(metrics={**p.metrics, k: 1})

                mutate_project(store, "p1", add_metric, now=2.0, attempts=200)

        threads = [threading.Thread(target=bump, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = store.get_project("p1")
        assert len(final.metrics) == 30 and final.version == 31

    def test_rejected_events(self, store: ProjectStore) -> None:
        store.add_rejected_event(RejectedEvent("r1", "t", "{", "bad json", 1.0))
        assert [r.reason for r in store.list_rejected_events()] == ["bad json"]

    def test_service_records(self, store: ProjectStore) -> None:
        rec = ServiceRecord("s1", "alice", "inference_server", "n", {"x": 1}, 1.0, "p1")
        store.put_service_record(rec)
        assert store.get_service_record("s1", owner="alice", kind="inference_server") == rec
        with pytest.raises(NotFoundError):
            store.get_service_record("s1", owner="bob", kind="inference_server")
        assert store.list_service_records(owner="alice", kind="inference_server",
                                          project_id="p1") == [rec]
        assert store.list_service_records(owner="alice", kind="mock_data_provider") == []
        assert store.delete_service_record("s1")
        store.ping()

    def test_service_records_needing_work(self, store: ProjectStore) -> None:
        wanted = ServiceRecord("s1", "alice", "inference_server", "n1", {}, 1.0, "p1")
        running = wanted.replace(id="s2", name="n2", state="running")
        leaving = running.replace(id="s3", name="n3", owner="bob", desired=ABSENT)
        other = wanted.replace(id="s4", kind="mock_data_provider")
        for record in (wanted, running, leaving, other):
            store.put_service_record(record)
        found = store.list_service_records_needing_work(kinds={"inference_server"})
        assert found == [wanted, leaving]

    def test_observed_and_desired_fields_have_one_writer_each(self, store: ProjectStore) -> None:
        record = ServiceRecord("s1", "alice", "inference_server", "n1", {}, 1.0, "p1")
        store.put_service_record(record)
        assert store.request_service_removal("s1")  # the user, while the worker was busy
        running = record.replace(state="running", address="http://x", attempts=1, retry_at=5.0)
        assert store.observe_service_record(running)  # the worker, from its stale copy
        stored = store.get_service_record("s1", owner="alice", kind="inference_server")
        assert stored == running.replace(desired=ABSENT)
        assert not store.request_service_removal("nope")
        assert not store.observe_service_record(record.replace(id="nope"))


class TestMemoryStore(StoreContract):
    __test__ = True

    def make_store(self) -> ProjectStore:
        return MemoryProjectStore()


class TestMongoStore(StoreContract):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _nx(self, nx_server: NxServer) -> None:
        self.url = nx_server.url

    def make_store(self) -> ProjectStore:
        return MongoProjectStore(self.url, db_name="c" + uuid.uuid4().hex[:12])

    @pytest.mark.parametrize("data", [{"n": 10**30}, {"a\x00b": 1}, {"k": b"\xff" * 17_000_000}])
    def test_unstorable_documents_are_refused_not_crashed(
        self, store: ProjectStore, data: dict[str, object]
    ) -> None:
        """BSON's encoding errors (not PyMongoErrors) become UnstorableError, nothing stored."""
        store.create_project(project("p1"))
        with pytest.raises(UnstorableError, match=r"cannot be stored.*64-bit"):
            store.append_event("p1", {"event_id": "e1", "data": data}, received_at=1.0)
        with pytest.raises(UnstorableError):
            store.create_project(project("p2").replace(spec={"extra": data}))
        assert store.list_events("p1") == []
        stored = store.append_event("p1", event("e2"), received_at=2.0)
        assert stored is not None and stored.seq == 1  # no sequence number was used up
        with pytest.raises(NotFoundError):
            store.get_project("p2")
