"""The reconciler is woken by the API's changes, not only by its interval."""

from __future__ import annotations

from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.services.projects import ProjectService


def test_create_cancel_and_delete_wake_the_reconciler_after_storing() -> None:
    store = MemoryProjectStore()
    woken: list[list[tuple[str, bool]]] = []

    def wake() -> None:  # what the reconciler would find when woken
        woken.append([(p.phase.value, p.deleting) for p in store.list_projects_needing_work()])

    service = ProjectService(store, allow_local_repos=True, on_change=wake)
    pid = service.create(owner="alice", spec={}, repository={"url": "https://h/u/r"}).id
    service.cancel(pid, owner="alice")
    service.delete(pid, owner="alice")
    assert woken[0] == [("submitted", False)]
    assert len(woken) == 3 and woken[2] == [("cancelled", True)]
