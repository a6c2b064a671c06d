"""Round bookkeeping, shortage rules and best-model selection (pure, no Flower, no I/O)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

from flops_contracts.errors import TrainingError
from flops_contracts.spec import SelectionMode

Snapshot = TypeVar("Snapshot")


@dataclasses.dataclass(frozen=True)
class FitOutcome:
    """One learner's successful fit answer."""

    examples: int
    bytes_received: int


@dataclasses.dataclass(frozen=True)
class EvaluateOutcome:
    """One learner's successful evaluate answer."""

    loss: float
    examples: int
    accuracy: float | None


@dataclasses.dataclass(frozen=True)
class RoundReport:
    """What happened in one round, as recorded in MLflow and events."""

    server_round: int
    loss: float | None
    accuracy: float | None
    fit_answered: int
    fit_failed: int
    evaluate_answered: int
    evaluate_failed: int
    fit_examples: int
    evaluate_examples: int
    duration_s: float
    bytes_sent: int
    bytes_received: int

    def metrics(self) -> dict[str, float]:
        """Numeric metrics of this round (for MLflow step metrics)."""
        out: dict[str, float] = {
            "learners_answered": float(self.fit_answered),
            "learners_failed": float(self.fit_failed + self.evaluate_failed),
            "round_duration_s": self.duration_s,
            "bytes_exchanged": float(self.bytes_sent + self.bytes_received),
            "fit_examples": float(self.fit_examples),
        }
        if self.loss is not None:
            out["loss"] = self.loss
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy
        return out


def weighted_mean(values: Sequence[tuple[float, int]]) -> float | None:
    """Example-weighted mean of ``(value, examples)`` pairs; ``None`` if there are no examples."""
    total = sum(n for _, n in values)
    if total <= 0:
        return None
    return sum(v * n for v, n in values) / total


class RoundRecorder:
    """Collects one round's fit and evaluate outcomes and enforces the learner minimums.

    Parameters
    ----------
    min_fit, min_evaluate
        Fewest answers a fit / evaluate phase needs; fewer ends training with a stated reason.
    participant
        What the clients are called in messages (``"learners"`` or ``"cluster aggregators"``).
    """

    def __init__(self, *, min_fit: int, min_evaluate: int, participant: str = "learners") -> None:
        self.min_fit = min_fit
        self.min_evaluate = min_evaluate
        self.participant = participant
        self._round = 0
        self._started = 0.0
        self._bytes_sent = 0
        self._fit: list[FitOutcome] = []
        self._fit_failed = 0

    def fit_started(self, server_round: int, *, sampled: int, bytes_sent: int) -> None:
        """Record that ``sampled`` clients were sent ``bytes_sent`` bytes in total."""
        self._round = server_round
        self._started = time.perf_counter()
        self._bytes_sent = bytes_sent
        self._fit = []
        self._fit_failed = 0

    def add_bytes_sent(self, nbytes: int) -> None:
        """Count parameters sent outside the fit phase (evaluation instructions)."""
        self._bytes_sent += nbytes

    def fit_finished(
        self, server_round: int, outcomes: Sequence[FitOutcome], failures: Sequence[str]
    ) -> None:
        """Record fit answers.

        Raises
        ------
        TrainingError
            If fewer than ``min_fit`` clients answered.
        """
        if self._round != server_round:
            self.fit_started(server_round, sampled=len(outcomes) + len(failures), bytes_sent=0)
        self._fit = list(outcomes)
        self._fit_failed = len(failures)
        if len(outcomes) < self.min_fit:
            raise TrainingError(
                f"round {server_round}: only {len(outcomes)} {self.participant} returned "
                f"training results ({len(failures)} failed); at least {self.min_fit} "
                f"(min_fit) are needed, so training cannot continue",
                details={"round": server_round, "answered": len(outcomes),
                         "failed": len(failures), "min_fit": self.min_fit,
                         "failures": list(failures)[:10]},
            )

    def evaluate_finished(
        self,
        server_round: int,
        outcomes: Sequence[EvaluateOutcome],
        failures: Sequence[str],
    ) -> RoundReport:
        """Record evaluate answers and return the round's report.

        Raises
        ------
        TrainingError
            If fewer than ``min_evaluate`` clients answered.
        """
        if len(outcomes) < self.min_evaluate:
            raise TrainingError(
                f"round {server_round}: only {len(outcomes)} {self.participant} returned "
                f"evaluation results ({len(failures)} failed); at least {self.min_evaluate} "
                "(min_evaluate) are needed, so training cannot continue",
                details={"round": server_round, "answered": len(outcomes),
                         "failed": len(failures), "min_evaluate": self.min_evaluate,
                         "failures": list(failures)[:10]},
            )
        loss = weighted_mean([(o.loss, o.examples) for o in outcomes])
        accuracy = weighted_mean(
            [(o.accuracy, o.examples) for o in outcomes if o.accuracy is not None]
        )
        started = self._started if self._round == server_round else time.perf_counter()
        return RoundReport(
            server_round=server_round,
            loss=loss,
            accuracy=accuracy,
            fit_answered=len(self._fit) if self._round == server_round else 0,
            fit_failed=self._fit_failed if self._round == server_round else 0,
            evaluate_answered=len(outcomes),
            evaluate_failed=len(failures),
            fit_examples=sum(o.examples for o in self._fit),
            evaluate_examples=sum(o.examples for o in outcomes),
            duration_s=time.perf_counter() - started,
            bytes_sent=self._bytes_sent,
            bytes_received=sum(o.bytes_received for o in self._fit),
        )


class BestModelTracker(Generic[Snapshot]):
    """Keeps the snapshot (e.g. the serialized parameters) of the best evaluated global model.

    The snapshot is kept as offered, never copied or converted: the aggregator offers Flower's
    serialized ``Parameters`` of every round and deserializes only the winner, once, at the end.
    A snapshot must therefore not be changed after it was offered.
    """

    def __init__(self, *, metric: str, mode: SelectionMode) -> None:
        self.metric = metric
        self.mode = mode
        self.best_round: int | None = None
        self.best_value: float | None = None
        self.best_report: RoundReport | None = None
        self.best_parameters: Snapshot | None = None

    def offer(self, report: RoundReport, parameters: Snapshot | None) -> bool:
        """Consider the model evaluated in ``report``; return whether it is the new best."""
        value = report.accuracy if self.metric == "accuracy" else report.loss
        if value is None or parameters is None:
            return False
        better = (
            self.best_value is None
            or (self.mode is SelectionMode.MAX and value > self.best_value)
            or (self.mode is SelectionMode.MIN and value < self.best_value)
        )
        if better:
            self.best_round = report.server_round
            self.best_value = value
            self.best_report = report
            self.best_parameters = parameters
        return better
