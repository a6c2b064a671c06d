"""The cluster aggregator of hierarchical FL.

It is a Flower client of the root aggregator and a Flower server for its own learners, which stay
connected across root rounds. For each root round it trains ``rounds`` rounds with its learners,
starting from the global parameters it received; when the root asks it to evaluate, it evaluates
the *received global parameters* on its learners (not cached training averages).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aggregator.flower_api import (
    FlowerSession,
    Parameters,
    RecordingStrategy,
    build_flower_strategy,
    to_ndarrays,
)
from aggregator.rounds import RoundRecorder, RoundReport
from aggregator.runtime import ExitCode, learner_round_config, make_emitter, server_certificates
from flops_contracts.aggregator_settings import AggregatorSettings
from flops_contracts.errors import ConfigError, TrainingError
from flops_contracts.events import EventType, training_data
from flops_messaging import EventEmitter
from learner_base.flower_client import CallbackClient, run_client

logger = logging.getLogger(__name__)


class ClusterAggregator:
    """State of one cluster aggregator across root rounds."""

    def __init__(self, settings: AggregatorSettings, emitter: EventEmitter) -> None:
        self.settings = settings
        self.emitter = emitter
        self.session = FlowerSession(
            address=settings.listen_address, certificates=server_certificates(settings)
        )
        self.parameters: list[Any] = []
        self._learners_joined = False
        self.cycle = 0

    @property
    def _training(self) -> Any:
        return self.settings.training

    def _ensure_learners(self) -> None:
        if self._learners_joined:
            return
        t = self._training
        self.session.wait_for_clients(
            target=max(self.settings.expected_clients or t.learners, t.effective_min_available),
            minimum=t.effective_min_available,
            timeout_s=t.connect_timeout_s,
        )
        self._learners_joined = True

    def _recorder(self) -> RoundRecorder:
        t = self._training
        return RoundRecorder(min_fit=t.effective_min_fit, min_evaluate=t.effective_min_evaluate)

    def _on_report(self, report: RoundReport, _parameters: Parameters | None) -> None:
        self.emitter.emit(EventType.ROUND_COMPLETED, **training_data(
            round=report.server_round,
            total_rounds=self._training.rounds,
            metrics={"loss": report.loss, "accuracy": report.accuracy},
            cycle=self.cycle,
            answered=report.fit_answered,
            failed=report.fit_failed + report.evaluate_failed,
            duration_s=round(report.duration_s, 4),
        ))

    def _on_failures(self, server_round: int, phase: str, reasons: list[str]) -> None:
        self.emitter.emit(
            EventType.LEARNER_FAILED, cycle=self.cycle, round=server_round, phase=phase,
            count=len(reasons), reasons=reasons[:10],
        )

    def fit(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[list[Any], int, dict[str, Any]]:
        """Run one cycle of cluster rounds from the received global parameters."""
        self.cycle = int(config.get("server_round", self.cycle + 1))
        self._ensure_learners()
        t = self._training
        t_min_fit, t_min_eval = t.effective_min_fit, t.effective_min_evaluate
        strategy = RecordingStrategy(
            build_flower_strategy(
                t, initial_parameters=parameters, min_fit=t_min_fit, min_evaluate=t_min_eval
            ),
            recorder=self._recorder(),
            round_config=learner_round_config(t),
            on_report=self._on_report,
            on_failures=self._on_failures,
        )
        self.session.fit(strategy, num_rounds=t.rounds, round_timeout_s=t.round_timeout_s)
        if strategy.latest_parameters is None:
            raise TrainingError(f"cluster {self.settings.cluster_name}: no parameters aggregated")
        self.parameters = to_ndarrays(strategy.latest_parameters)
        return self.parameters, max(1, strategy.last_fit_examples), {}

    def evaluate(
        self, parameters: list[Any], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        """Evaluate the received global parameters on this cluster's learners."""
        self._ensure_learners()
        t = self._training
        strategy = RecordingStrategy(
            build_flower_strategy(
                t, initial_parameters=parameters, min_fit=t.effective_min_fit,
                min_evaluate=t.effective_min_evaluate,
            ),
            recorder=self._recorder(),
            round_config=learner_round_config(t),
            on_failures=self._on_failures,
            fit_enabled=False,
        )
        report = self.session.evaluate(
            strategy, parameters=parameters, server_round=int(config.get("server_round", 0)),
            round_timeout_s=t.round_timeout_s,
        )
        if report is None or report.loss is None:
            raise TrainingError(f"cluster {self.settings.cluster_name}: evaluation gave no result")
        metrics: dict[str, Any] = {}
        if report.accuracy is not None:
            metrics["accuracy"] = report.accuracy
        self.emitter.emit(
            EventType.PROGRESS, phase="global_evaluation", cycle=int(config.get("server_round", 0)),
            loss=report.loss, accuracy=report.accuracy, examples=report.evaluate_examples,
        )
        return report.loss, report.evaluate_examples, metrics


def run_cluster_aggregator(settings: AggregatorSettings) -> int:
    """Run a cluster aggregator until the root finishes; return the exit code."""
    emitter = make_emitter(settings)
    try:
        return _run_cluster(settings, emitter)
    finally:
        emitter.close()


def _run_cluster(settings: AggregatorSettings, emitter: EventEmitter) -> int:
    cluster = ClusterAggregator(settings, emitter)
    if settings.root_address is None:
        raise ConfigError("a cluster aggregator needs FLOPS_ROOT_ADDRESS (its root aggregator)")
    root_ca = Path(settings.root_tls_ca_file).read_bytes() if settings.root_tls_ca_file else None
    try:
        cluster.session.start()
        emitter.emit(EventType.STARTED, address=settings.listen_address,
                     root=settings.root_address, cluster=settings.cluster_name)
        run_client(
            CallbackClient(
                get_parameters=lambda: cluster.parameters,
                fit=cluster.fit,
                evaluate=cluster.evaluate,
            ),
            server_address=settings.root_address,
            connect_timeout_s=settings.training.connect_timeout_s,
            root_certificates=root_ca,
        )
    except ConnectionError as exc:
        emitter.emit(EventType.FAILED, reason=str(exc), stage="connection")
        logger.error("%s", exc)
        return ExitCode.CONNECTION
    except Exception as exc:
        reason = f"cluster aggregator error: {type(exc).__name__}: {exc}"
        emitter.emit(EventType.FAILED, reason=reason, stage="training")
        logger.exception("%s", reason)
        return ExitCode.TRAINING
    finally:
        cluster.session.stop()
    emitter.emit(EventType.COMPLETED, cluster=settings.cluster_name, cycles=cluster.cycle)
    return ExitCode.OK
