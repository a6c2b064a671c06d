"""The reconciler wakes on an accepted event instead of waiting for its interval."""

from __future__ import annotations

import concurrent.futures
import threading

from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.lifecycle.wakeup import waking
from flops_manager.lifecycle.worker import ReconcileWorker
from flops_manager.services.ingest import IngestResult, Outcome
from tests.manager.conftest import make_settings


def test_only_accepted_events_wake_the_reconciler() -> None:
    woken: list[str] = []
    for outcome in Outcome:
        def ingest(topic: str, payload: bytes, o: Outcome = outcome) -> IngestResult:
            return IngestResult(o)

        def wake(o: Outcome = outcome) -> None:
            woken.append(o.value)

        handler = waking(ingest, wake)
        assert handler("t", b"{}") == IngestResult(outcome)
    assert woken == ["accepted"]


class CountingWorker(ReconcileWorker):
    """Counts passes; the interval is far longer than the test may take."""

    def __init__(self) -> None:
        super().__init__(MemoryProjectStore(), MemoryOrchestrator(),
                         make_settings(reconcile_interval_s=60))
        self.passes = 0
        self.passed = threading.Condition()

    def _dispatch(self) -> list[concurrent.futures.Future[int]]:  # one call per loop pass
        with self.passed:
            self.passes += 1
            self.passed.notify_all()
        return []


def test_wake_runs_the_next_pass_without_waiting_for_the_interval() -> None:
    worker = CountingWorker()
    worker.start()
    try:
        with worker.passed:
            assert worker.passed.wait_for(lambda: worker.passes == 1, timeout=30)
            worker.wake()
            assert worker.passed.wait_for(lambda: worker.passes == 2, timeout=30)
    finally:
        worker.stop()
    assert worker._thread is not None and not worker._thread.is_alive()
