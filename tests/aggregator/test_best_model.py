"""The best global model is kept serialized and deserialized once, for the right round."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from flwr.common import Code, EvaluateRes, FitRes, Parameters, Status, ndarrays_to_parameters
from flwr.server.strategy import FedAvg

from aggregator.flower_api import RecordingStrategy, to_ndarrays
from aggregator.rounds import BestModelTracker, EvaluateOutcome, RoundRecorder, RoundReport
from aggregator.runtime import _register_best
from flops_contracts.spec import SelectionMode

ACCURACY = {1: 0.5, 2: 0.9, 3: 0.7}
"""Round 2 is the best; round 3, the last, is worse."""


class Proxy:
    """The one attribute of Flower's ClientProxy the strategy reads."""

    def __init__(self, cid: str) -> None:
        self.cid = cid


class Manager:
    """Records the parameters the aggregator loads into the model."""

    loaded: list[Any] | None = None

    def set_model_parameters(self, parameters: list[Any]) -> None:
        self.loaded = parameters


def train(best: BestModelTracker[Parameters]) -> RecordingStrategy:
    """Three rounds in which both learners return ``round`` everywhere; FedAvg keeps it."""
    def on_report(report: RoundReport, parameters: Parameters | None) -> None:
        best.offer(report, parameters)

    strategy = RecordingStrategy(
        FedAvg(min_fit_clients=2, accept_failures=True),
        recorder=RoundRecorder(min_fit=2, min_evaluate=2), round_config={},
        on_report=on_report)
    for rnd, accuracy in ACCURACY.items():
        fit = [(Proxy(c), FitRes(Status(Code.OK, ""),
                                 ndarrays_to_parameters([np.full(3, float(rnd))]), 5, {}))
               for c in "ab"]
        strategy.aggregate_fit(rnd, fit, [])  # type: ignore[arg-type]
        evaluate = [(Proxy(c), EvaluateRes(Status(Code.OK, ""), 1.0 - accuracy, 5,
                                           {"accuracy": accuracy})) for c in "ab"]
        strategy.aggregate_evaluate(rnd, evaluate, [])  # type: ignore[arg-type]
    return strategy


def test_the_best_round_is_kept_serialized_and_registered_not_the_last() -> None:
    best: BestModelTracker[Parameters] = BestModelTracker(metric="accuracy",
                                                          mode=SelectionMode.MAX)
    strategy = train(best)
    assert best.best_round == 2
    assert isinstance(best.best_parameters, Parameters)  # not deserialized per round
    assert strategy.latest_parameters is not None
    assert to_ndarrays(strategy.latest_parameters)[0].tolist() == [3.0, 3.0, 3.0]
    manager = Manager()
    assert _register_best(cast(Any, None), manager, best, None, {}, cast(Any, None)) is None
    assert manager.loaded is not None
    assert [a.tolist() for a in manager.loaded] == [[2.0, 2.0, 2.0]]


def test_the_tracker_keeps_the_offered_snapshot_itself() -> None:
    tracker: BestModelTracker[object] = BestModelTracker(metric="loss", mode=SelectionMode.MIN)
    recorder = RoundRecorder(min_fit=0, min_evaluate=0)
    snapshot = object()
    report = recorder.evaluate_finished(1, [EvaluateOutcome(0.5, 1, None)], [])
    assert tracker.offer(report, snapshot)
    assert tracker.best_parameters is snapshot
