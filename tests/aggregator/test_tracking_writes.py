"""Per-round metrics are written in coalesced batches, and flush() does not wait the interval."""

from __future__ import annotations

import threading
import time
from typing import Any

from aggregator.rounds import RoundReport
from aggregator.tracking import MlflowTracker


class Client:
    """Records log_batch calls."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def log_batch(self, run_id: str, metrics: list[Any]) -> None:
        self.batches.append(metrics)


def report(rnd: int) -> RoundReport:
    return RoundReport(server_round=rnd, loss=0.5, accuracy=0.5, fit_answered=2, fit_failed=0,
                       evaluate_answered=2, evaluate_failed=0, fit_examples=10,
                       evaluate_examples=10, duration_s=0.01, bytes_sent=1, bytes_received=1)


def test_rounds_within_the_interval_are_one_batch_and_flush_writes_them_at_once() -> None:
    client = Client()
    tracker = MlflowTracker(tracking_uri="unused", experiment_name="e", run_name="r",
                            write_interval_s=3600)
    tracker.run_id = "run"
    tracker._client = lambda: client  # type: ignore[method-assign]
    for rnd in (1, 2, 3):
        tracker.log_round(report(rnd))
    time.sleep(0.2)
    assert client.batches == []  # rounds wait for the interval...
    flushing = threading.Thread(target=tracker.flush)
    flushing.start()
    flushing.join(10)
    assert not flushing.is_alive()  # ...unless flushed: then written without waiting
    assert len(client.batches) == 1
    assert {m.step for m in client.batches[0]} == {1, 2, 3}
    tracker.log_round(report(4))
    tracker.flush()
    assert [{m.step for m in batch} for batch in client.batches] == [{1, 2, 3}, {4}]
