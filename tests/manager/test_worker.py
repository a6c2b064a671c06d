from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pymongo
import pytest

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.adapters.nx_launcher import EmbeddedMongo
from flops_manager.lifecycle.state import Phase
from flops_manager.lifecycle.worker import ReconcileWorker
from flops_manager.ports.orchestrator import ServiceSpec, ServiceState, ServiceStatus
from flops_manager.services.projects import ProjectService
from tests.manager.conftest import make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(**overrides: object) -> tuple[MemoryProjectStore, MemoryOrchestrator, ReconcileWorker,
                                        Clock, str]:
    store, orch, clock = MemoryProjectStore(), MemoryOrchestrator(), Clock()
    settings = make_settings(action_backoff_s=5.0, **overrides)
    pid = ProjectService(store, allow_local_repos=True, clock=clock).create(
        owner="alice", spec={}, repository={"url": "https://h/u/r"}).id
    return store, orch, ReconcileWorker(store, orch, settings, clock=clock), clock, pid


def test_temporary_errors_are_retried_with_backoff() -> None:
    store, orch, worker, clock, pid = setup()
    orch.fail_next = 2
    worker.tick()
    p = store.get_project(pid)
    assert p.phase is Phase.BUILDING and p.pending[0].attempts == 1
    worker.tick()  # not due yet
    assert store.get_project(pid).pending[0].attempts == 1
    clock.now += 5.1
    worker.tick()
    assert store.get_project(pid).pending[0].attempts == 2
    clock.now += 10.1
    worker.tick()
    assert not store.get_project(pid).pending and f"{pid}-builder" in orch.services


def test_gives_up_after_max_attempts() -> None:
    store, orch, worker, clock, pid = setup(action_max_attempts=2)
    orch.fail_next = 10
    worker.tick()
    clock.now += 100
    worker.tick()
    p = store.get_project(pid)
    assert p.phase is Phase.FAILED and "build_images failed" in (p.last_error or "")


def test_timeout_fails_and_delete_cleans_up() -> None:
    store, orch, worker, clock, pid = setup(phase_timeouts={Phase.BUILDING: 60.0})
    worker.tick()
    clock.now += 61
    worker.tick()
    assert store.get_project(pid).phase is Phase.FAILED
    assert f"{pid}-builder" not in orch.services
    ProjectService(store, allow_local_repos=True, clock=clock).delete(pid, owner="alice")
    worker.tick()
    assert store.list_projects(owner="alice").total == 0
    assert not store.list_projects_needing_work()


def test_resume_from_store_with_new_worker() -> None:
    store, orch, _worker, clock, pid = setup()
    fresh = ReconcileWorker(store, orch, make_settings(), clock=clock)
    fresh.start()
    try:
        from tests.fixtures.servers import wait_for

        wait_for(lambda: f"{pid}-builder" in orch.services, what="builder created")
    finally:
        fresh.stop()


def test_embedded_nx_launcher(tmp_path: Path) -> None:
    embedded = EmbeddedMongo(tmp_path)
    url = embedded.start()
    try:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url)
        client.flops.x.insert_one({"_id": 1})
        assert client.flops.x.count_documents({}) == 1
        client.close()
    finally:
        embedded.stop()
    assert (tmp_path / "db" / "flops.db").exists()


class BlockingOrchestrator(MemoryOrchestrator):
    """Creating a service whose name starts with ``blocked`` waits until ``release`` is set."""

    def __init__(self, blocked: str) -> None:
        super().__init__()
        self.blocked = blocked
        self.entered = threading.Event()
        self.release = threading.Event()

    def create_service(self, spec: ServiceSpec) -> ServiceStatus:
        if spec.name.startswith(self.blocked):
            self.entered.set()
            assert self.release.wait(60), "never released"
        return super().create_service(spec)


def test_a_blocked_project_does_not_stall_the_others() -> None:
    """Project A's step blocks inside the orchestrator; project B is built meanwhile."""
    from tests.fixtures.servers import wait_for

    store = MemoryProjectStore()
    projects = ProjectService(store, allow_local_repos=True)
    a = projects.create(owner="alice", spec={}, repository={"url": "https://h/u/a"}).id
    orch = BlockingOrchestrator(blocked=a)
    worker = ReconcileWorker(store, orch, make_settings(reconcile_workers=2,
                                                        reconcile_interval_s=0.05))
    worker.start()
    try:
        wait_for(orch.entered.is_set, what="project A's builder creation to block")
        b = projects.create(owner="alice", spec={}, repository={"url": "https://h/u/b"}).id
        wait_for(lambda: f"{b}-builder" in orch.services, what="project B's builder")
        assert f"{a}-builder" not in orch.services  # A is still blocked
        assert store.get_project(a).pending, "A's action is still running"
        orch.release.set()
        wait_for(lambda: f"{a}-builder" in orch.services, what="project A's builder")
        assert orch.created == [f"{b}-builder", f"{a}-builder"]
    finally:
        orch.release.set()
        worker.stop()


def test_tick_reconciles_every_project_and_waits_for_all() -> None:
    store, orch, worker, clock, pid = setup(reconcile_workers=3)
    projects = ProjectService(store, allow_local_repos=True, clock=clock)
    others = [projects.create(owner="alice", spec={}, repository={"url": f"https://h/u/{i}"}).id
              for i in range(3)]
    assert worker.tick() == 4
    assert {f"{p}-builder" for p in [pid, *others]} <= set(orch.services)


class DeadServices(MemoryOrchestrator):
    """Reports every service it created as failed (a process that exited)."""

    def _status(self, spec: ServiceSpec) -> ServiceStatus:
        status: ServiceStatus = super()._status(spec)
        return dataclasses.replace(status, state=ServiceState.FAILED, message="exited with -9")


@pytest.mark.parametrize(("polling", "expected"), [(True, Phase.FAILED), (False, Phase.BUILDING)])
def test_service_status_polling_can_be_turned_off(polling: bool, expected: Phase) -> None:
    store, _, _, clock, pid = setup()
    settings = make_settings(service_status_polling=polling)
    worker = ReconcileWorker(store, DeadServices(), settings, clock=clock)
    worker.tick()  # creates the builder
    worker.tick()  # reads its status only when polling
    project = store.get_project(pid)
    assert project.phase is expected
    if polling:
        assert "exited with -9" in (project.last_error or "")


def test_a_pending_last_will_expires_only_while_the_manager_hears_the_broker() -> None:
    from flops_contracts.events import Component, Event, EventType, connection_data
    from flops_contracts.topics import event_topic
    from flops_manager.services.ingest import EventIngest

    store, orch, _, clock, pid = setup(will_grace_s=5.0)
    heard: list[float | None] = [None]
    worker = ReconcileWorker(store, orch, make_settings(will_grace_s=5.0), clock=clock,
                             hearing_since=lambda: heard[0])
    worker.tick()
    instance = f"{pid}-builder-0"
    will = Event(pid, Component.BUILDER, instance, EventType.LOST, incarnation="inc-b",
                 data=connection_data(1, reason="connection to the broker dropped"))
    EventIngest(store, clock=clock).handle(event_topic(pid, Component.BUILDER, instance),
                                           will.to_json().encode())
    clock.now += 60
    worker.tick()  # the manager does not hear the broker: nobody could say online
    assert store.get_project(pid).phase is Phase.BUILDING
    heard[0] = clock.now
    clock.now += 4.9
    worker.tick()
    assert store.get_project(pid).phase is Phase.BUILDING
    clock.now += 0.1
    worker.tick()
    p = store.get_project(pid)
    assert p.phase is Phase.FAILED
    assert p.last_error == f"builder '{instance}' lost: connection to the broker dropped"


def test_a_pass_asked_for_while_one_runs_follows_when_it_lands() -> None:
    """An event that arrives during a project's pass is not left for the next interval."""
    store = MemoryProjectStore()
    pid = ProjectService(store, allow_local_repos=True).create(
        owner="alice", spec={}, repository={"url": "https://h/u/a"}).id
    orch = BlockingOrchestrator(blocked=pid)
    worker = ReconcileWorker(store, orch, make_settings(reconcile_workers=2))
    try:
        running = worker._dispatch()
        assert orch.entered.wait(60)
        assert worker._dispatch() == []  # skipped: its pass is running
        assert not worker._wake.is_set()
        orch.release.set()
        running[0].result(60)
        assert worker._wake.is_set()  # the loop passes the project again at once
        worker._wake.clear()
        worker._dispatch()[0].result(60)
        assert not worker._wake.is_set()  # nothing asked for during that pass
    finally:
        orch.release.set()
