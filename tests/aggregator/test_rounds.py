import numpy as np
import pytest

from aggregator.rounds import (
    BestModelTracker,
    EvaluateOutcome,
    FitOutcome,
    RoundRecorder,
    weighted_mean,
)
from flops_contracts.errors import TrainingError
from flops_contracts.spec import SelectionMode


def test_weighted_mean():
    assert weighted_mean([(1.0, 1), (3.0, 3)]) == pytest.approx(2.5)
    assert weighted_mean([]) is None


def test_round_report_weights_by_examples():
    rec = RoundRecorder(min_fit=2, min_evaluate=2)
    rec.fit_started(1, sampled=3, bytes_sent=300)
    rec.fit_finished(1, [FitOutcome(10, 100), FitOutcome(30, 100)], ["boom"])
    report = rec.evaluate_finished(
        1, [EvaluateOutcome(1.0, 10, 0.5), EvaluateOutcome(2.0, 30, 1.0)], []
    )
    assert report.loss == pytest.approx(1.75)
    assert report.accuracy == pytest.approx(0.875)
    assert (report.fit_answered, report.fit_failed, report.fit_examples) == (2, 1, 40)
    assert report.bytes_sent + report.bytes_received == 500
    assert report.metrics()["learners_failed"] == 1


def test_too_few_fit_results_end_training_with_reason():
    rec = RoundRecorder(min_fit=2, min_evaluate=1)
    rec.fit_started(2, sampled=3, bytes_sent=0)
    with pytest.raises(TrainingError) as info:
        rec.fit_finished(2, [FitOutcome(1, 1)], ["x", "y"])
    assert "round 2" in info.value.message and "min_fit" in info.value.message
    assert info.value.details["answered"] == 1


def test_too_few_evaluate_results_end_training():
    rec = RoundRecorder(min_fit=1, min_evaluate=2)
    with pytest.raises(TrainingError, match="min_evaluate"):
        rec.evaluate_finished(1, [EvaluateOutcome(1.0, 1, 1.0)], ["gone"])


@pytest.mark.parametrize(("metric", "mode", "best_round"),
                         [("accuracy", SelectionMode.MAX, 2), ("loss", SelectionMode.MIN, 3)])
def test_best_model_tracker(metric, mode, best_round):
    tracker: BestModelTracker[list[np.ndarray]] = BestModelTracker(metric=metric, mode=mode)
    rec = RoundRecorder(min_fit=0, min_evaluate=1)
    values = {1: (0.9, 0.5), 2: (0.8, 0.9), 3: (0.1, 0.7)}
    for rnd, (loss, acc) in values.items():
        report = rec.evaluate_finished(rnd, [EvaluateOutcome(loss, 1, acc)], [])
        tracker.offer(report, [np.full(2, rnd)])
    assert tracker.best_round == best_round
    assert tracker.best_parameters is not None
    assert tracker.best_parameters[0][0] == best_round
