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
    tracker.log_round(report(1))
    deadline = time.monotonic() + 10
    while not client.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(client.batches) == 1  # the first round is written at once
    tracker.log_round(report(2))
    tracker.log_round(report(3))
    time.sleep(0.1)
    assert len(client.batches) == 1  # the next ones wait for the interval...
    flushing = threading.Thread(target=tracker.flush)
    flushing.start()
    flushing.join(10)
    assert not flushing.is_alive()  # ...unless flushed: then written without waiting
    assert len(client.batches) == 2
    assert {m.step for m in client.batches[1]} == {2, 3}
