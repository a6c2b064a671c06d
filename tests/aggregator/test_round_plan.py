"""The aggregator's pure pieces: its round plan and how an error ends training."""

from __future__ import annotations

from aggregator.runtime import ExitCode, failure_of, round_plan
from flops_contracts.aggregator_settings import AggregatorRole, AggregatorSettings
from flops_contracts.errors import ContractError, TrainingError
from flops_contracts.spec import TrainingSpec


def test_a_classic_aggregator_waits_for_its_learners() -> None:
    settings = AggregatorSettings(repo_dir="/r", expected_clients=3,
                                  training=TrainingSpec(rounds=4, learners=3))
    plan = round_plan(settings)
    assert (plan.participant, plan.target, plan.num_rounds) == ("learners", 3, 4)
    assert plan.call_timeout_s == settings.training.round_timeout_s


def test_a_root_aggregator_runs_cluster_cycles_with_longer_calls() -> None:
    training = TrainingSpec.model_validate({
        "mode": "hierarchical", "rounds": 2, "cycles": 3, "learners": 2,
        "clusters": ["a", "b"], "min_clusters": 2})
    settings = AggregatorSettings(role=AggregatorRole.ROOT, repo_dir="/r", training=training)
    plan = round_plan(settings)
    assert (plan.participant, plan.target, plan.num_rounds) == ("cluster aggregators", 2, 3)
    assert plan.call_timeout_s == training.round_timeout_s * 5
    assert plan.min_fit == plan.min_evaluate == 2


def test_errors_map_to_stages_and_exit_codes() -> None:
    training = failure_of(TrainingError("too few", details={"round": 2}))
    assert (training.stage, training.exit_code, training.details) == (
        "training", ExitCode.TRAINING, {"round": 2})
    model = failure_of(ContractError("bad model"))
    assert (model.stage, model.exit_code, model.unexpected) == ("model", ExitCode.CONTRACT, False)
    other = failure_of(ZeroDivisionError("division by zero"))
    assert other.stage == "internal" and other.unexpected
    assert other.reason == "aggregator error: ZeroDivisionError: division by zero"
