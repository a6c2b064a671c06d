"""The learner process: load the repository, load data once, train rounds, report events."""

from __future__ import annotations

import enum
import logging
from pathlib import Path

from flops_contracts.errors import ContractError, FlopsError
from flops_contracts.events import Component, EventType
from flops_messaging import EventEmitter, create_emitter
from learner_base import active_context
from learner_base.contract_checks import CallSite
from learner_base.flower_client import ClientCodeError, ModelManagerClient, run_client
from learner_base.legacy_manager import unwrap
from learner_base.model_manager import LearnerContext, RoundConfig
from learner_base.repository import MODEL_MANAGER_FILE, load_model_manager
from learner_base.settings import LearnerSettings

logger = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    """Learner exit codes (range 30-39); 0 means training finished."""

    OK = 0
    CONTRACT = 31
    DATA = 32
    CONNECTION = 33
    TRAINING = 34


def run_learner(settings: LearnerSettings) -> int:
    """Run one learner to completion and return its exit code."""
    emitter = create_emitter(
        settings.events_uri,
        project_id=settings.project_id,
        component=Component.LEARNER,
        instance=settings.instance_name,
        background=True,  # fit/evaluate never wait for their progress events
    )
    try:
        return _run(settings, emitter)
    finally:
        emitter.close()


def _run(settings: LearnerSettings, emitter: EventEmitter) -> int:
    try:
        manager = load_model_manager(Path(settings.repo_dir))
    except ContractError as exc:
        emitter.emit(EventType.FAILED, reason=exc.message, stage="contract")
        logger.error("%s", exc.message)
        return ExitCode.CONTRACT

    index = settings.learner_index
    context = LearnerContext(
        learner_index=index,
        learner_count=settings.learner_count,
        data_tags=tuple(settings.data_tags),
        seed=settings.seed if "seed" in settings.model_fields_set else index,
        data_server=settings.data_server,
    )
    active_context.publish(context)  # for flops_utils.load_dataset() (original FLOps repos)
    try:
        manager.set_model_data(context)
    except FlopsError as exc:  # e.g. no data for the tags: the message says it all
        emitter.emit(EventType.FAILED, reason=exc.message, stage="data")
        logger.error("%s", exc.message)
        return ExitCode.DATA
    except Exception as exc:  # noqa: BLE001 - user code; report and stop
        reason = f"loading data failed: {type(exc).__name__}: {exc}"
        emitter.emit(EventType.FAILED, reason=reason, stage="data")
        logger.error("%s", reason)
        return ExitCode.DATA

    emitter.emit(EventType.STARTED, server_address=settings.server_address)
    rounds: list[int] = []

    def on_fit(config: RoundConfig, examples: int, seconds: float) -> None:
        rounds.append(config.server_round)
        emitter.emit(
            EventType.PROGRESS,
            phase="fit",
            round=config.server_round,
            examples=examples,
            train_seconds=round(seconds, 4),
        )

    def on_evaluate(config: RoundConfig, loss: float, accuracy: float, examples: int) -> None:
        emitter.emit(
            EventType.PROGRESS,
            phase="evaluate",
            round=config.server_round,
            loss=loss,
            accuracy=accuracy,
            examples=examples,
        )

    root_cert = Path(settings.tls_root_cert).read_bytes() if settings.tls_root_cert else None
    site = CallSite(file=MODEL_MANAGER_FILE, cls=type(unwrap(manager)).__name__)
    client = ModelManagerClient(manager, on_fit=on_fit, on_evaluate=on_evaluate, site=site)
    try:
        run_client(
            client,
            server_address=settings.server_address,
            connect_timeout_s=settings.connect_timeout_s,
            root_certificates=root_cert,
        )
    except ContractError as exc:
        emitter.emit(EventType.FAILED, reason=exc.message, stage="contract")
        logger.error("%s", exc.message)
        return ExitCode.CONTRACT
    except ConnectionError as exc:
        emitter.emit(EventType.FAILED, reason=str(exc), stage="connection")
        logger.error("%s", exc)
        return ExitCode.CONNECTION
    except ClientCodeError as exc:
        reason = f"training failed in the ModelManager: {exc}"
        emitter.emit(EventType.FAILED, reason=reason, stage="training")
        logger.error("%s", reason)
        return ExitCode.TRAINING
    emitter.emit(EventType.COMPLETED, rounds=len(rounds))
    return ExitCode.OK
