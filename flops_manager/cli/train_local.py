"""``flops train-local``: federated training of a repository with local processes only."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from flops_contracts.errors import ContractError, FlopsError
from flops_contracts.events import Component, Event, EventType
from flops_contracts.spec import ProjectSpec, TrainingSpec, parse_spec
from flops_manager.cli.local_data import LocalData, default_data_tag, start_data_plane
from flops_manager.cli.local_plan import LocalRun, ProcessPlan, main_process, plan_processes
from flops_manager.cli.local_requirements import requirement_warnings
from flops_manager.cli.local_tracking import default_cache_dir, seed_sqlite_store
from flops_manager.local_processes import ManagedProcess, ProcessGroup, free_port
from flops_messaging.file_publisher import EventTail
from learner_base.repository import repository_dir

MAIN_COMPONENTS = {Component.AGGREGATOR, Component.ROOT_AGGREGATOR}
WATCH_INTERVAL_S = 0.05
"""How often the events file and the aggregator's exit are checked (reading new lines is cheap)."""
USAGE_ERROR = 2
"""Exit code when the input is wrong: the spec, the options, or a repository that breaks the
ModelManager contract (checked once, by the aggregator as it starts: the check imports the
repository's libraries, which took the command 1.2 s before anything started)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``train-local`` options."""
    parser.add_argument("repo_dir", type=Path, help="directory of the ML repository")
    parser.add_argument("--learners", type=int, help="learners (per cluster when hierarchical)")
    parser.add_argument("--rounds", type=int, help="rounds (per cycle when hierarchical)")
    parser.add_argument("--strategy", help="FedAvg, FedProx, FedAdam, ... (default FedAvg)")
    parser.add_argument("--strategy-param", action="append", default=[], metavar="KEY=VALUE",
                        help="strategy hyper-parameter, repeatable (e.g. proximal_mu=0.1)")
    parser.add_argument("--mode", choices=["classic", "hierarchical"])
    parser.add_argument("--clusters", type=int, help="hierarchical: number of clusters")
    parser.add_argument("--cycles", type=int, help="hierarchical: root rounds")
    parser.add_argument("--min-fit", type=int, dest="min_fit", help="min_fit_learners")
    parser.add_argument("--round-timeout", type=float, dest="round_timeout",
                        help="seconds a round may take")
    parser.add_argument("--spec", type=Path, help="JSON project spec; options above override it")
    parser.add_argument("--mlflow-uri", dest="mlflow_uri",
                        help="MLflow tracking URI (default: sqlite store in the work directory)")
    parser.add_argument("--workdir", type=Path, help="where logs, events and MLflow data go")
    parser.add_argument("--timeout", type=float, help="overall limit in seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON summary line last")
    data = parser.add_argument_group(
        "data plane", "start one ML data server per learner and fill it with the mock provider")
    data.add_argument("--data", choices=["iid", "dirichlet", "label_skew"],
                      help="partitioner of the mock data (enables the data plane)")
    data.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration")
    data.add_argument("--dataset", default="sklearn:digits",
                      help="mock data source: sklearn:NAME, file:PATH (default sklearn:digits)")
    data.add_argument("--data-tag", dest="data_tag",
                      help="tag of the uploaded data (default: the spec's first tag, else the "
                      "data set's name, e.g. 'iris' for sklearn:iris)")
    data.add_argument("--data-seed", dest="data_seed", type=int, default=0)


def _scalar(text: str) -> bool | int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    return text


def build_spec(args: argparse.Namespace) -> ProjectSpec:
    """Merge ``--spec`` with the command-line options and validate the result.

    Raises
    ------
    FlopsError
        With a message naming every invalid field.
    """
    data: dict[str, Any] = {}
    if args.spec:
        try:
            data = json.loads(args.spec.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FlopsError(f"cannot read spec {args.spec}: {exc}") from None
    training: dict[str, Any] = dict(data.get("training", {}))
    for key, value in (
        ("learners", args.learners), ("rounds", args.rounds), ("mode", args.mode),
        ("cycles", args.cycles), ("min_fit_learners", args.min_fit),
        ("round_timeout_s", args.round_timeout),
    ):
        if value is not None:
            training[key] = value
    if args.mode == "hierarchical" and "cycles" not in training:
        training["cycles"] = 1
    if args.clusters is not None:
        training["clusters"] = [f"cluster-{i}" for i in range(args.clusters)]
    if args.strategy or args.strategy_param:
        strategy = dict(training.get("strategy", {}))
        if args.strategy:
            strategy["name"] = args.strategy
        params = dict(strategy.get("params", {}))
        for item in args.strategy_param:
            key, sep, value = item.partition("=")
            if not sep:
                raise FlopsError(f"--strategy-param {item!r}: use KEY=VALUE")
            params[key] = _scalar(value)
        strategy["params"] = params
        training["strategy"] = strategy
    data["training"] = training
    return parse_spec(data)


def _progress_line(event: Event) -> str | None:
    d = event.data
    if event.event is EventType.ROUND_COMPLETED and event.component in MAIN_COMPONENTS:
        parts = [f"round {d.get('round')}/{d.get('total_rounds')}"]
        parts += [f"{key} {value:.4f}" for key, value in d.get("metrics", {}).items()]
        parts.append(f"learners {d.get('answered')} answered, {d.get('failed')} failed")
        parts.append(f"({d.get('duration_s')}s)")
        return "  ".join(parts)
    if event.event is EventType.LEARNER_FAILED:
        return f"{event.component} {event.instance}: {d.get('count')} failure(s) in round " \
               f"{d.get('round')} ({d.get('phase')})"
    if event.event is EventType.LOG and d.get("level") == "warning":
        return f"{event.component} {event.instance} warning: {d.get('message')}"
    if event.event in (EventType.FAILED, EventType.LOST):
        return f"{event.component} {event.instance} {event.event}: {d.get('reason')}"
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``train-local``; return the exit code."""
    out = sys.stdout
    try:
        spec = build_spec(args)
        repository_dir(args.repo_dir)  # the contract itself: the aggregator, as it starts
        warnings = requirement_warnings(args.repo_dir)
    except (FlopsError, ContractError) as exc:
        return _finish(args, {"status": "failed", "reason": exc.message}, USAGE_ERROR)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="flops-train-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    events_path = workdir / "events.jsonl"
    events_path.unlink(missing_ok=True)
    tracking_uri = args.mlflow_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    if not args.mlflow_uri:
        seed_sqlite_store(workdir / "mlflow.db", cache_dir=default_cache_dir(os.environ))
    t = spec.training
    local = LocalRun(
        repo_dir=str(args.repo_dir.resolve()),
        training=t,
        project_name=spec.name,
        events_uri=f"file://{events_path}",
        mlflow_tracking_uri=tracking_uri,
        mlflow_artifact_location=None if args.mlflow_uri else str(workdir / "mlartifacts"),
        registered_model_name=spec.model.registered_model_name,
    )
    group = ProcessGroup(workdir / "logs")
    token: str | None = None
    if args.data:
        tag = args.data_tag or (spec.data_tags[0] if spec.data_tags
                                else default_data_tag(args.dataset))
        learners = t.learners * _clusters(t)
        print(f"starting {learners} data servers and the mock data provider "
              f"({args.data}, tag {tag!r})", file=out, flush=True)
        try:
            servers, token = start_data_plane(
                LocalData(partitioner=args.data, learners=learners, tag=tag,
                          dataset=args.dataset, alpha=args.alpha, seed=args.data_seed),
                group=group, workdir=workdir, events_uri=local.events_uri,
            )
        except FlopsError as exc:
            group.stop_all()
            return _finish(args, {"status": "failed", "reason": exc.message,
                                  "workdir": str(workdir)}, 1)
        local = dataclasses.replace(local, data_servers=tuple(servers),
                                    data_tags=tuple(spec.data_tags or [tag]))
    plans = plan_processes(local, free_port)
    if token is not None:  # the data token reaches learners only through their environment
        plans = [dataclasses.replace(p, env={**p.env, "FLOPS_DATA_TOKEN": token})
                 if p.role == "learner" else p for p in plans]
    limit = args.timeout or time_limit(t)
    print(f"work directory: {workdir}", file=out)
    print(f"starting {len(plans)} processes ({t.mode.value}, {t.strategy.name.value}, "
          f"{total_rounds(t)} rounds)", file=out)
    try:
        main = _start_all(group, plans)
        outcome = _watch(main, EventTail(events_path), t, limit=limit, out=out)
        if outcome.completed:
            group.wait_all(10.0)  # learners say goodbye; after a failure they are stopped
    except KeyboardInterrupt:
        return _finish(args, {"status": "cancelled", "workdir": str(workdir)}, 130)
    finally:
        group.stop_all()

    final = outcome.final
    if not outcome.completed or final is None:
        reason = outcome.reason or (final.data.get("reason") if final else (
            f"aggregator exited with code {main.returncode} without a result; "
            f"see {main.log_path}"
        ))
        return _finish(args, {"status": "failed", "reason": reason, "workdir": str(workdir)},
                       USAGE_ERROR if outcome.repository_refused else 1)
    summary = {**completed_summary(final.data), "mlflow_tracking_uri": tracking_uri,
               "workdir": str(workdir), "warnings": warnings}
    return _finish(args, summary, 0)


def total_rounds(training: TrainingSpec) -> int:
    """Rounds the main aggregator runs: cluster cycles (hierarchical) or rounds."""
    return (training.cycles or 1) if training.mode.value == "hierarchical" else training.rounds


def time_limit(training: TrainingSpec) -> float:
    """Seconds a run may take at most: connecting, every round's timeout and 2 min to spare."""
    per_round = training.round_timeout_s * (2 * training.rounds + 1 if training.cycles else 2)
    return training.connect_timeout_s + total_rounds(training) * per_round + 120


def completed_summary(data: Mapping[str, Any]) -> dict[str, Any]:
    """The run's summary from the main aggregator's ``completed`` event data."""
    return {
        "status": "completed",
        "accuracy": data["metrics"].get("accuracy"),
        "loss": data["metrics"].get("loss"),
        "rounds": data.get("total_rounds"),
        "best_round": data.get("best_round"),
        "best_accuracy": (data.get("best_value") if data.get("selection_metric") == "accuracy"
                          else None),
        "mlflow_run_id": data.get("mlflow_run_id"),
        "model_uri": data.get("model_uri"),
        "registered_model_uri": data.get("registry_uri"),
    }


def _start_all(group: ProcessGroup, plans: list[ProcessPlan]) -> ManagedProcess:
    """Start every planned process; return the main aggregator's."""
    main = None
    for plan in plans:
        started = group.start(plan.name, plan.argv, plan.env)
        if plan is main_process(plans):
            main = started
    if main is None:
        raise FlopsError("no aggregator among the processes to start")
    return main


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How watching a run ended: the main aggregator's final event, or why it was given up."""

    final: Event | None
    reason: str | None = None
    learners_refused: bool = False
    """Given up because learners refused the repository as they started (its contract)."""

    @property
    def completed(self) -> bool:
        """The main aggregator completed the training and nothing made the command give up."""
        return (self.reason is None and self.final is not None
                and self.final.event is EventType.COMPLETED)

    @property
    def repository_refused(self) -> bool:
        """The repository broke the ModelManager contract as a component loaded it.

        The aggregator reports stage ``contract`` only for that check; a learner, also for a
        call that broke the contract during training (a training failure, exit code 1).
        """
        if self.final is not None and self.final.event is EventType.FAILED:
            return self.final.data.get("stage") == "contract"
        return self.learners_refused


def _watch(main: ManagedProcess, tail: EventTail, training: TrainingSpec, *, limit: float,
           out: TextIO) -> Outcome:
    """Print progress until the main aggregator exits, too many learners fail, or time is up."""
    final: Event | None = None
    early_failures: list[Event] = []
    started: set[str] = set()  # learners that loaded the repository and started
    tolerated = training.learners * _clusters(training) - training.effective_min_available
    deadline = time.monotonic() + limit
    while True:
        exited = main.returncode is not None
        for event in tail.read_new():
            line = _progress_line(event)
            if line:
                print(line, file=out, flush=True)
            if event.component in MAIN_COMPONENTS and event.event in (
                EventType.COMPLETED, EventType.FAILED
            ):
                final = event
            if event.component is Component.LEARNER and event.event is EventType.STARTED:
                started.add(event.instance)
            if (event.component is Component.LEARNER and event.event is EventType.FAILED
                    and event.data.get("stage") in ("contract", "data")):
                early_failures.append(event)
        if len(early_failures) > tolerated:
            first = early_failures[0]
            return Outcome(final, f"learner {first.instance}: {first.data.get('reason')}",
                           learners_refused=first.data.get("stage") == "contract"
                           and first.instance not in started)
        if exited:
            return Outcome(final)
        if time.monotonic() > deadline:
            return Outcome(final, f"timed out after {limit:.0f}s")
        time.sleep(WATCH_INTERVAL_S)


def _clusters(training: TrainingSpec) -> int:
    """Clusters a run deploys learners to (1 for classic training)."""
    return len(training.clusters) if training.clusters else 1


def _finish(args: argparse.Namespace, summary: dict[str, Any], code: int) -> int:
    out = sys.stdout
    if summary.get("status") == "completed":
        print("training completed", file=out)
        for key in ("accuracy", "loss", "rounds", "best_round", "mlflow_run_id",
                    "registered_model_uri", "mlflow_tracking_uri"):
            print(f"  {key}: {summary.get(key)}", file=out)
    else:
        print(f"training {summary.get('status')}: {summary.get('reason', '')}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary), file=out, flush=True)
    return code
