"""The classic and root aggregator: run rounds, track in MLflow, register the best model."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from pathlib import Path
from typing import Any

from aggregator.experiment_kind import mark_model_training
from aggregator.flower_api import (
    FlowerSession,
    Parameters,
    RecordingStrategy,
    build_flower_strategy,
    to_ndarrays,
)
from aggregator.rounds import BestModelTracker, RoundRecorder, RoundReport
from aggregator.tracking import MlflowTracker, RegisteredModel
from flops_contracts.aggregator_settings import AggregatorRole, AggregatorSettings
from flops_contracts.errors import ConfigError, ContractError, TrainingError
from flops_contracts.events import Component, EventType, training_data
from flops_contracts.spec import TrainingSpec
from flops_messaging import EventEmitter, create_emitter
from learner_base.repository import load_model_manager

logger = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    """Aggregator exit codes (range 20-29); 0 means training completed."""

    OK = 0
    CONTRACT = 21
    TRAINING = 22
    CONNECTION = 23
    INTERNAL = 29


COMPONENT_BY_ROLE = {
    AggregatorRole.CLASSIC: Component.AGGREGATOR,
    AggregatorRole.ROOT: Component.ROOT_AGGREGATOR,
    AggregatorRole.CLUSTER: Component.CLUSTER_AGGREGATOR,
}


def make_emitter(settings: AggregatorSettings) -> EventEmitter:
    """Create the event emitter for this aggregator."""
    return create_emitter(
        settings.events_uri,
        project_id=settings.project_id,
        component=COMPONENT_BY_ROLE[settings.role],
        instance=settings.instance_name,
        background=True,  # a round never waits for its round_completed event
    )


def server_certificates(settings: AggregatorSettings) -> tuple[bytes, bytes, bytes] | None:
    """Read (CA, certificate, key) for a TLS-enabled Flower server, if configured."""
    if not settings.tls_cert_file:
        return None
    if not settings.tls_ca_file or not settings.tls_key_file:
        raise ConfigError("TLS needs a CA file and a key file next to the certificate file")
    return (
        Path(settings.tls_ca_file).read_bytes(),
        Path(settings.tls_cert_file).read_bytes(),
        Path(settings.tls_key_file).read_bytes(),
    )


def learner_round_config(training: TrainingSpec) -> dict[str, Any]:
    """The flat per-round configuration every learner receives."""
    lc = training.learner_config
    config: dict[str, Any] = {"local_epochs": lc.local_epochs, "batch_size": lc.batch_size}
    if lc.learning_rate is not None:
        config["learning_rate"] = lc.learning_rate
    config.update(lc.extra)
    return config


def training_params(settings: AggregatorSettings) -> dict[str, Any]:
    """The spec as flat MLflow params."""
    t = settings.training
    params: dict[str, Any] = {
        "mode": t.mode.value,
        "strategy": t.strategy.name.value,
        "rounds": t.rounds,
        "learners": t.learners,
        "min_available_learners": t.effective_min_available,
        "min_fit_learners": t.effective_min_fit,
        "min_evaluate_learners": t.effective_min_evaluate,
        "fraction_fit": t.fraction_fit,
        "fraction_evaluate": t.fraction_evaluate,
        "round_timeout_s": t.round_timeout_s,
        "selection_metric": t.selection_metric,
        **{f"learner_config.{k}": v for k, v in learner_round_config(t).items()},
        **{f"strategy.{k}": v for k, v in t.strategy.params.items()},
    }
    for placed in settings.data_placement:
        prefix = f"data.learner_{placed.get('learner')}"
        params[f"{prefix}.node"] = placed.get("node")
        params[f"{prefix}.rows"] = placed.get("rows")
        if placed.get("label_histogram"):
            params[f"{prefix}.labels"] = json.dumps(placed["label_histogram"], sort_keys=True)
    if t.cycles is not None:
        params["cycles"] = t.cycles
    if t.differential_privacy is not None:
        for key, value in t.differential_privacy.model_dump().items():
            params[f"differential_privacy.{key}"] = value
    return params


def run_aggregator(settings: AggregatorSettings) -> int:
    """Run a classic or root aggregator to completion and return its exit code."""
    emitter = make_emitter(settings)
    try:
        return _run(settings, emitter)
    finally:
        emitter.close()


@dataclasses.dataclass(frozen=True)
class RoundPlan:
    """How many rounds with how many participants: learners, or cluster aggregators (root)."""

    participant: str
    minimum: int
    target: int
    num_rounds: int
    call_timeout_s: float
    min_fit: int
    min_evaluate: int


def round_plan(settings: AggregatorSettings) -> RoundPlan:
    """The plan of a classic aggregator (learners) or a root aggregator (clusters)."""
    training = settings.training
    if settings.role is AggregatorRole.ROOT:
        minimum = training.min_clusters
        return RoundPlan(
            participant="cluster aggregators",
            minimum=minimum,
            target=settings.expected_clients or len(training.clusters or []) or minimum,
            num_rounds=training.cycles or 1,
            # One root round runs a whole cluster cycle: give each call time for all its rounds.
            call_timeout_s=training.round_timeout_s * (2 * training.rounds + 1),
            min_fit=minimum,
            min_evaluate=minimum,
        )
    minimum = training.effective_min_available
    return RoundPlan(
        participant="learners",
        minimum=minimum,
        target=max(settings.expected_clients or training.learners, minimum),
        num_rounds=training.rounds,
        call_timeout_s=training.round_timeout_s,
        min_fit=training.effective_min_fit,
        min_evaluate=training.effective_min_evaluate,
    )


def run_tags(settings: AggregatorSettings, num_rounds: int) -> dict[str, str]:
    """The MLflow tags of the training run (and of the registered model)."""
    training = settings.training
    return {
        "flops.project_id": settings.project_id,
        "flops.repository": settings.repository_url or str(settings.repo_dir),
        "flops.commit": settings.commit or "unknown",
        "flops.strategy": training.strategy.name.value,
        "flops.rounds": str(num_rounds),
        "flops.mode": training.mode.value,
    }


def _tracker(settings: AggregatorSettings) -> MlflowTracker | None:
    if not settings.mlflow_tracking_uri:
        return None
    name = settings.project_name or settings.project_id
    return MlflowTracker(
        tracking_uri=settings.mlflow_tracking_uri,
        experiment_name=settings.mlflow_experiment or f"flops-{name}",
        run_name=f"{name}-training",
        artifact_location=settings.mlflow_artifact_location,
    )


@dataclasses.dataclass(frozen=True)
class Failure:
    """How the aggregator reports an error that ended training."""

    stage: str
    reason: str
    exit_code: ExitCode
    details: dict[str, Any]
    unexpected: bool = False
    """Log the traceback: the error is not one FLOps raises on purpose."""


def failure_of(exc: Exception) -> Failure:
    """Map an error that ended training to its ``failed`` event and exit code."""
    if isinstance(exc, TrainingError):
        return Failure("training", exc.message, ExitCode.TRAINING, dict(exc.details))
    if isinstance(exc, ContractError):
        return Failure("model", exc.message, ExitCode.CONTRACT, {})
    return Failure("internal", f"aggregator error: {type(exc).__name__}: {exc}",
                   ExitCode.INTERNAL, {}, unexpected=True)


def _run(settings: AggregatorSettings, emitter: EventEmitter) -> int:
    if settings.repo_dir is None:
        raise ConfigError("the aggregator needs the repository directory (FLOPS_REPO_DIR)")
    training = settings.training
    try:
        manager = load_model_manager(Path(settings.repo_dir))
        initial = manager.get_model_parameters()
    except ContractError as exc:
        emitter.emit(EventType.FAILED, reason=exc.message, stage="contract")
        logger.error("%s", exc.message)
        return ExitCode.CONTRACT

    plan = round_plan(settings)
    tracker = _tracker(settings)
    tags = run_tags(settings, plan.num_rounds)
    best: BestModelTracker[Parameters] = BestModelTracker(
        metric=training.selection_metric, mode=training.effective_selection_mode
    )
    reports: list[RoundReport] = []

    def on_report(report: RoundReport, parameters: Parameters | None) -> None:
        reports.append(report)
        if tracker is not None:
            tracker.log_round(report)
        improved = best.offer(report, parameters)
        emitter.emit(EventType.ROUND_COMPLETED, **training_data(
            round=report.server_round,
            total_rounds=plan.num_rounds,
            metrics={"loss": report.loss, "accuracy": report.accuracy},
            answered=report.fit_answered,
            failed=report.fit_failed + report.evaluate_failed,
            duration_s=round(report.duration_s, 4),
            bytes_exchanged=report.bytes_sent + report.bytes_received,
            best=improved,
        ))

    def on_failures(server_round: int, phase: str, reasons: list[str]) -> None:
        logger.warning("round %s %s: %s failure(s): %s", server_round, phase, len(reasons),
                       reasons)
        emitter.emit(
            EventType.LEARNER_FAILED,
            round=server_round,
            phase=phase,
            count=len(reasons),
            reasons=reasons[:10],
        )

    session = FlowerSession(
        address=settings.listen_address, certificates=server_certificates(settings)
    )
    try:
        session.start()  # learners can connect while MLflow initialises
        if tracker is not None:
            tracker.start(params=training_params(settings), tags=tags)
            if tracker.experiment_id is not None:
                mark_model_training(tracker.tracking_uri, tracker.experiment_id)
        emitter.emit(
            EventType.STARTED, address=settings.listen_address, expected=plan.target,
            rounds=plan.num_rounds, mlflow_run_id=tracker.run_id if tracker else None,
        )
        connected = session.wait_for_clients(
            target=plan.target, minimum=plan.minimum, timeout_s=training.connect_timeout_s
        )
        logger.info("%s %s connected; starting %s rounds", connected, plan.participant,
                    plan.num_rounds)
        strategy = RecordingStrategy(
            build_flower_strategy(training, initial_parameters=initial, min_fit=plan.min_fit,
                                  min_evaluate=plan.min_evaluate),
            recorder=RoundRecorder(min_fit=plan.min_fit, min_evaluate=plan.min_evaluate,
                                   participant=plan.participant),
            round_config=({} if settings.role is AggregatorRole.ROOT
                          else learner_round_config(training)),
            on_report=on_report,
            on_failures=on_failures,
        )
        session.fit(strategy, num_rounds=plan.num_rounds, round_timeout_s=plan.call_timeout_s)
        if len(reports) < plan.num_rounds:
            raise TrainingError(
                f"training ended after {len(reports)} of {plan.num_rounds} rounds without "
                "evaluation results"
            )
        session.stop()  # let learners go before the (slower) model logging
        model = _register_best(settings, manager, best, tracker, tags, emitter)
    except Exception as exc:  # noqa: BLE001 - every error ends training with a failed event
        failure = failure_of(exc)
        emitter.emit(EventType.FAILED, reason=failure.reason, stage=failure.stage,
                     **failure.details)
        (logger.exception if failure.unexpected else logger.error)("%s", failure.reason)
        if tracker is not None:
            tracker.finish(failed=True)
        return failure.exit_code
    finally:
        session.stop()

    final = reports[-1]
    emitter.emit(EventType.COMPLETED, **training_data(
        total_rounds=len(reports),
        metrics={"loss": final.loss, "accuracy": final.accuracy},
        best_round=best.best_round,
        best_value=best.best_value,
        selection_metric=best.metric,
        mlflow_run_id=tracker.run_id if tracker else None,
        mlflow_experiment_id=tracker.experiment_id if tracker else None,
        model_uri=model.model_uri if model else None,
        registered_model=model.registered_name if model else None,
        model_version=model.version if model else None,
        registry_uri=model.registry_uri if model else None,
    ))
    if tracker is not None:
        tracker.finish()
    return ExitCode.OK


def _register_best(
    settings: AggregatorSettings,
    manager: Any,
    best: BestModelTracker[Parameters],
    tracker: MlflowTracker | None,
    tags: dict[str, str],
    emitter: EventEmitter,
) -> RegisteredModel | None:
    """Load the best parameters into the model (deserialized here, once) and log/register it."""
    if best.best_parameters is None:
        raise TrainingError("no round produced an evaluated global model to keep")
    manager.set_model_parameters(to_ndarrays(best.best_parameters))
    if tracker is None:
        return None
    report, value = best.best_report, best.best_value
    if report is None or value is None:
        raise TrainingError("no round produced an evaluated global model to keep")
    summary = {f"best_{best.metric}": value, "best_round": float(report.server_round)}
    tracker.log_summary(summary)
    name = settings.registered_model_name or (
        f"flops-{settings.project_name or settings.project_id}"
    )
    model_tags = {**tags, "flops.best_round": str(report.server_round),
                  "flops.selection_metric": best.metric}
    model = tracker.log_model(manager, registered_model_name=name, tags=model_tags,
                              source_dir=Path(settings.repo_dir) if settings.repo_dir else None)
    if model.warning is not None:
        emitter.emit(EventType.LOG, level="warning", stage="model", message=model.warning)
    return model
