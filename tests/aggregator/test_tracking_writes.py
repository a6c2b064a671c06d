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


def test_rounds_logged_before_the_background_start_reach_the_run(tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(tracking_uri=uri, experiment_name="e", run_name="r",
                            artifact_location=str(tmp_path / "artifacts"))
    started = threading.Event()
    tracker.start_in_background(params={"rounds": 2}, tags={"t": "1"},
                                then=lambda _: started.set())
    tracker.log_round(report(1))  # the run may not exist yet: queued
    tracker.log_round(report(2))
    run_id = tracker.wait_started()
    assert started.is_set()
    tracker.finish()
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"rounds": "2"}
    steps = [m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, "loss")]
    assert sorted(steps) == [1, 2]


def test_a_failed_background_start_is_raised_by_check_and_wait_started() -> None:
    tracker = MlflowTracker(tracking_uri="unused", experiment_name="e", run_name="r")

    def broken() -> Any:
        raise ConnectionError("tracking server down")

    tracker._client = broken  # type: ignore[method-assign]
    tracker.start_in_background(params={}, tags={})
    tracker.log_round(report(1))  # queued, then dropped with a warning
    try:
        tracker.wait_started()
    except ConnectionError as exc:
        assert "down" in str(exc)
    else:
        raise AssertionError("wait_started() did not raise")
    try:
        tracker.check()
    except ConnectionError:
        pass
    else:
        raise AssertionError("check() did not raise")
    tracker.flush()  # the queued round is given up on; flush does not hang
    tracker.finish(failed=True)  # no run: nothing to end
