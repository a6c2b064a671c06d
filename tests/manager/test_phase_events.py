"""Phase changes are events; one lost in a crash is recorded again by the next manager."""

from __future__ import annotations

from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.services.mutate import mutate_project, record_missing_phase_change


def test_a_lost_phase_change_is_recorded_once_after_a_restart() -> None:
    store = MemoryProjectStore()
    p = store.create_project(Project(id="p1", owner="a", spec={}, repository={"url": "x"},
                                     created_at=0, updated_at=0))
    mutate_project(store, p.id, lambda q: q.replace(phase=Phase.BUILDING), now=1)
    # a crash right after saving "deploying" lost its event:
    current = store.get_project(p.id)
    saved = store.save_project(current.replace(phase=Phase.DEPLOYING),
                               expected_version=current.version)
    assert record_missing_phase_change(store, saved, now=2) is True
    assert record_missing_phase_change(store, saved, now=3) is False  # nothing more to add
    changes = [(e.event["data"]["from"], e.event["data"]["to"])
               for e in store.list_events(p.id) if e.event["event"] == "phase_changed"]
    assert changes == [("submitted", "building"), ("building", "deploying")]
