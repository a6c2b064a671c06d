"""A learner answering fit with no training examples is a failure, never a division by zero."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.server.strategy import FedAvg

from aggregator.flower_api import RecordingStrategy
from aggregator.rounds import RoundRecorder
from flops_contracts.errors import TrainingError


class Proxy:
    """The one attribute of Flower's ClientProxy the strategy reads."""

    def __init__(self, cid: str) -> None:
        self.cid = cid


def answer(cid: str, examples: int) -> tuple[Proxy, FitRes]:
    parameters = ndarrays_to_parameters([np.full(3, float(examples))])
    return Proxy(cid), FitRes(Status(Code.OK, ""), parameters, examples, {})


def strategy(min_fit: int, failures: list[str]) -> RecordingStrategy:
    return RecordingStrategy(
        FedAvg(min_fit_clients=min_fit, accept_failures=True),
        recorder=RoundRecorder(min_fit=min_fit, min_evaluate=1), round_config={},
        on_failures=lambda _round, _phase, reasons: failures.extend(reasons))


def test_zero_example_answers_count_as_failures_and_the_rest_is_aggregated() -> None:
    failures: list[str] = []
    parameters, _ = strategy(1, failures).aggregate_fit(
        1, [answer("a", 0), answer("b", 4)], [])  # type: ignore[list-item]
    assert parameters is not None
    assert failures == ["client a: fit reported 0 training examples; a learner must train on "
                        "at least one"]


def test_only_zero_example_answers_end_training_with_a_reason() -> None:
    failures: list[str] = []
    with pytest.raises(TrainingError, match="only 0 learners returned training results"):
        strategy(1, failures).aggregate_fit(1, [answer("a", 0)], [])  # type: ignore[list-item]
    assert len(failures) == 1
