"""train-local's pure pieces: its time limit and the summary of a completed run."""

from __future__ import annotations

from flops_contracts.events import Component, Event, EventType
from flops_contracts.spec import TrainingSpec
from flops_manager.cli.train_local import Outcome, completed_summary, time_limit, total_rounds


def test_classic_limit_covers_connecting_and_two_timeouts_per_round() -> None:
    t = TrainingSpec(rounds=3, round_timeout_s=10, connect_timeout_s=60)
    assert total_rounds(t) == 3
    assert time_limit(t) == 60 + 3 * 10 * 2 + 120


def test_hierarchical_limit_counts_cycles_of_cluster_rounds() -> None:
    t = TrainingSpec.model_validate({
        "mode": "hierarchical", "rounds": 2, "cycles": 3, "learners": 1, "clusters": ["a", "b"],
        "round_timeout_s": 10, "connect_timeout_s": 60})
    assert total_rounds(t) == 3
    assert time_limit(t) == 60 + 3 * 10 * 5 + 120


def test_summary_reports_best_accuracy_only_when_accuracy_selected() -> None:
    data = {"metrics": {"accuracy": 0.9, "loss": 0.3}, "total_rounds": 3, "best_round": 2,
            "best_value": 0.93, "selection_metric": "accuracy", "model_uri": "runs:/r/model"}
    summary = completed_summary(data)
    assert summary["status"] == "completed" and summary["best_accuracy"] == 0.93
    assert summary["rounds"] == 3 and summary["model_uri"] == "runs:/r/model"
    assert completed_summary({**data, "selection_metric": "loss"})["best_accuracy"] is None


def test_only_a_repository_refused_at_start_is_a_usage_error() -> None:
    def failed(component: Component, stage: str) -> Event:
        return Event("p", component, "x", EventType.FAILED, {"stage": stage, "reason": "r"})

    # the aggregator's stage "contract" is its start-up check of the repository
    assert Outcome(failed(Component.AGGREGATOR, "contract")).repository_refused
    # a contract error in a later call is a model failure (stage "model"): training failed
    assert not Outcome(failed(Component.AGGREGATOR, "model")).repository_refused
    assert not Outcome(failed(Component.AGGREGATOR, "training")).repository_refused
    # learners that refused the repository as they started, or broke it in a call
    assert Outcome(None, "learner 0: r", learners_refused=True).repository_refused
    assert not Outcome(None, "learner 0: r").repository_refused
    assert not Outcome(None, "timed out").repository_refused
