"""End-to-end federated training with ``flops train-local`` (real Flower, MLflow, processes)."""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from flops_contracts.events import Component, EventType
from flops_messaging.file_publisher import read_events
from tests.fixtures.tools import require_module
from tests.integration.conftest import (
    EXAMPLES,
    finish,
    kill_instance,
    pids_of_instance,
    run_train_local,
    start_train_local,
    wait_for_event,
)

pytestmark = pytest.mark.integration


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    _, x_hold, _, y_hold = train_test_split(x / 16.0, y, test_size=0.2, random_state=0, stratify=y)
    return x_hold, y_hold


def test_fedavg_digits_sklearn_tracks_and_registers(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    code, summary, log = run_train_local(
        [str(EXAMPLES / "digits_sklearn"), "--learners", "3", "--rounds", "5"], tmp_path / "run")
    assert code == 0, log
    assert summary["status"] == "completed"
    assert summary["accuracy"] >= 0.90
    client = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"])
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.params["strategy"] == "FedAvg" and run.data.params["rounds"] == "5"
    for metric in ("loss", "accuracy", "learners_answered", "learners_failed",
                   "round_duration_s", "bytes_exchanged"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5], metric
    assert all(m.value == 3 for m in client.get_metric_history(run.info.run_id,
                                                                "learners_answered"))
    mlflow.set_tracking_uri(summary["mlflow_tracking_uri"])
    model = mlflow.pyfunc.load_model(summary["registered_model_uri"])
    x_hold, y_hold = held_out_digits()
    accuracy = float((np.asarray(model.predict(x_hold)) == y_hold).mean())
    assert accuracy >= 0.90
    name, version = summary["registered_model_uri"].split("/")[1:]
    tags = client.get_model_version(name, version).tags
    assert tags["flops.strategy"] == "FedAvg" and tags["flops.rounds"] == "5"
    assert "flops.repository" in tags and "flops.commit" in tags


@pytest.mark.parametrize("strategy_args", [
    ["--strategy", "FedProx", "--strategy-param", "proximal_mu=0.1"],
    ["--strategy", "FedAdam", "--strategy-param", "eta=0.05", "--strategy-param", "eta_l=0.05"],
])
def test_other_strategies_complete(tmp_path, strategy_args):
    code, summary, log = run_train_local(
        [str(EXAMPLES / "digits_sklearn"), "--learners", "3", "--rounds", "3", *strategy_args],
        tmp_path / "run")
    assert code == 0, log
    assert summary["status"] == "completed" and summary["rounds"] == 3
    assert summary["accuracy"] > 0.5


@pytest.mark.parametrize(("args", "needle"), [
    (["--strategy", "FedMagic"], "FedMagic"),
    (["--strategy", "FedProx", "--strategy-param", "proximal_mu=-2"], "proximal_mu"),
    (["--strategy", "Krum", "--strategy-param", "num_clients_to_keep=x"], "num_clients_to_keep"),
])
def test_bad_strategy_is_rejected_before_start(tmp_path, args, needle):
    started = time.monotonic()
    code, summary, _log = run_train_local([str(EXAMPLES / "digits_sklearn"), *args],
                                         tmp_path / "run", timeout=60)
    assert code == 2
    assert summary["status"] == "failed" and needle in summary["reason"]
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(("mutation", "needle"), [
    ("delete", "no model_manager.py"),
    ("rename_class", "defines no class ModelManager"),
    ("drop_method", "does not implement evaluate_model"),
    ("raise", "get_model_parameters() raised"),
])
def test_contract_violations_fail_before_training(tmp_path, mutation, needle):
    """The aggregator checks the contract as it starts; the command then stops every process."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "digits_sklearn", repo)
    source_path = repo / "model_manager.py"
    source = source_path.read_text()
    if mutation == "delete":
        source_path.unlink()
    elif mutation == "rename_class":
        source_path.write_text(source.replace("class ModelManager(", "class Model("))
    elif mutation == "drop_method":
        source_path.write_text(source.replace("def evaluate_model(", "def evaluate_model_old("))
    else:
        source_path.write_text(source.replace(
            "return [self.model.coef_.copy(), self.model.intercept_.copy()]",
            "raise RuntimeError('no weights')"))
    code, summary, log = run_train_local([str(repo), "--learners", "2", "--rounds", "2"],
                                         tmp_path / "run", timeout=60)
    assert code == 2, log
    assert needle in summary["reason"]
    events = read_events(tmp_path / "run" / "events.jsonl")
    refused = [e for e in events if e.event is EventType.FAILED]
    assert refused and refused[0].data["stage"] == "contract"
    assert not any(e.event is EventType.ROUND_COMPLETED for e in events)
    for name in ("classic", "learner-0", "learner-1"):  # nothing is left running
        assert pids_of_instance(tmp_path / "run", name) == []


def test_hierarchical_root_records_global_model_accuracy(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    workdir = tmp_path / "run"
    code, summary, log = run_train_local(
        [str(EXAMPLES / "digits_sklearn"), "--mode", "hierarchical", "--clusters", "2",
         "--learners", "2", "--cycles", "2", "--rounds", "2"], workdir)
    assert code == 0, log
    events = read_events(workdir / "events.jsonl")
    root_rounds = [e for e in events if e.component is Component.ROOT_AGGREGATOR
                   and e.event is EventType.ROUND_COMPLETED]
    assert [e.data["round"] for e in root_rounds] == [1, 2]
    assert all(e.data["answered"] == 2 for e in root_rounds)
    cluster_rounds = [e for e in events if e.component is Component.CLUSTER_AGGREGATOR
                      and e.event is EventType.ROUND_COMPLETED]
    assert len(cluster_rounds) == 2 * 2 * 2  # clusters x cycles x rounds
    # The root's accuracy per cycle is the example-weighted evaluation of the global model
    # that each cluster received, not a cached training average.
    for root in root_rounds:
        evals = [e for e in events if e.data.get("phase") == "global_evaluation"
                 and e.data.get("cycle") == root.data["round"]]
        assert len(evals) == 2
        weighted = sum(e.data["accuracy"] * e.data["examples"] for e in evals) / sum(
            e.data["examples"] for e in evals)
        assert root.data["metrics"]["accuracy"] == pytest.approx(weighted)
    # ... and equals an independent evaluation of the registered (best-round) model on the
    # union of all learners' test shards.
    import sys
    sys.path.insert(0, str(EXAMPLES / "digits_sklearn"))
    try:
        # the example's own data module, importable only from its directory
        load_partition = importlib.import_module("data").load_partition
    finally:
        sys.path.pop(0)
    from learner_base import LearnerContext

    shards = [load_partition(LearnerContext(learner_index=i, learner_count=4, seed=i))
              for i in range(4)]
    x_test = np.concatenate([s[2] for s in shards])
    y_test = np.concatenate([s[3] for s in shards])
    mlflow.set_tracking_uri(summary["mlflow_tracking_uri"])
    model = mlflow.pyfunc.load_model(summary["registered_model_uri"])
    independent = float((np.asarray(model.predict(x_test)) == y_test).mean())
    best = next(e for e in root_rounds if e.data["round"] == summary["best_round"])
    assert best.data["metrics"]["accuracy"] == pytest.approx(independent)
    history = MlflowClient(summary["mlflow_tracking_uri"]).get_metric_history(
        summary["mlflow_run_id"], "accuracy")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [e.data["metrics"]["accuracy"] for e in root_rounds])


def _spec_with_delay(tmp_path: Path, delay: float) -> Path:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"training": {
        "learner_config": {"extra": {"fit_delay_s": delay}}, "round_timeout_s": 30}}))
    return spec


def test_one_learner_killed_in_round_two_training_completes(tmp_path, slow_repo):
    workdir = tmp_path / "run"
    proc = start_train_local(
        [str(slow_repo), "--learners", "3", "--rounds", "3", "--min-fit", "2",
         "--spec", str(_spec_with_delay(tmp_path, 1.5))], workdir)
    try:
        wait_for_event(workdir / "events.jsonl",
                       lambda e: e.component is Component.AGGREGATOR
                       and e.event is EventType.ROUND_COMPLETED and e.data["round"] == 1, 120)
        kill_instance(workdir, "learner-2")
    finally:
        code, summary, log = finish(proc)
    assert code == 0, log
    assert summary["status"] == "completed" and summary["rounds"] == 3
    failures = [e for e in read_events(workdir / "events.jsonl")
                if e.event is EventType.LEARNER_FAILED]
    assert failures and failures[0].data["round"] == 2


def test_two_of_three_learners_killed_training_fails_with_shortage(tmp_path, slow_repo):
    workdir = tmp_path / "run"
    proc = start_train_local(
        [str(slow_repo), "--learners", "3", "--rounds", "3", "--min-fit", "2",
         "--spec", str(_spec_with_delay(tmp_path, 1.5))], workdir)
    try:
        wait_for_event(workdir / "events.jsonl",
                       lambda e: e.component is Component.AGGREGATOR
                       and e.event is EventType.ROUND_COMPLETED and e.data["round"] == 1, 120)
        killed_at = time.monotonic()
        kill_instance(workdir, "learner-1")
        kill_instance(workdir, "learner-2")
        failed = wait_for_event(workdir / "events.jsonl",
                                lambda e: e.component is Component.AGGREGATOR
                                and e.event is EventType.FAILED, 60)
        assert time.monotonic() - killed_at < 30  # within the round timeout
    finally:
        code, summary, _log = finish(proc)
    assert code == 1
    assert "min_fit" in failed.data["reason"] and "only 1 learners" in failed.data["reason"]
    assert summary["reason"] == failed.data["reason"]


def test_digits_pytorch(tmp_path):
    require_module("torch", "install the CPU build: pip install -e '.[torch]'")
    code, summary, log = run_train_local(
        [str(EXAMPLES / "digits_pytorch"), "--learners", "2", "--rounds", "3"], tmp_path / "run")
    assert code == 0, log
    assert summary["accuracy"] >= 0.85
