from typing import Any

import pytest

from flops_contracts.errors import ErrorCode, FlopsError
from flops_contracts.spec import ProjectSpec, SelectionMode, parse_spec
from flops_contracts.strategy_spec import PARAMS_BY_STRATEGY, StrategyName


def errors_of(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(FlopsError) as info:
        parse_spec(data)
    assert info.value.code is ErrorCode.INVALID_SPEC
    errors: dict[str, list[str]] = info.value.details["errors"]
    return errors


def test_defaults_are_valid_and_derived_minimums_follow_learners():
    spec = parse_spec({"training": {"learners": 4}})
    t = spec.training
    assert (t.effective_min_available, t.effective_min_fit, t.effective_min_evaluate) == (4, 4, 4)
    assert t.strategy.name is StrategyName.FEDAVG
    assert t.effective_selection_mode is SelectionMode.MAX


def test_unknown_strategy_is_named():
    errors = errors_of({"training": {"strategy": {"name": "FedMagic"}}})
    message = " ".join(m for v in errors.values() for m in v)
    assert "FedMagic" in message and "FedAvg" in message


def test_bad_hyper_parameter_names_strategy_and_parameter():
    errors = errors_of(
        {"training": {"strategy": {"name": "FedProx", "params": {"proximal_mu": -1}}}}
    )
    message = " ".join(m for v in errors.values() for m in v)
    assert "FedProx" in message and "proximal_mu" in message


def test_unknown_hyper_parameter_is_rejected():
    errors = errors_of({"training": {"strategy": {"name": "FedAdam", "params": {"etaa": 0.1}}}})
    assert "etaa" in " ".join(m for v in errors.values() for m in v)


def test_strategy_name_is_case_insensitive_and_params_get_defaults():
    spec = parse_spec({"training": {"strategy": {"name": "fedadam"}}})
    assert spec.training.strategy.name is StrategyName.FEDADAM
    assert spec.training.strategy.params["beta_1"] == 0.9


@pytest.mark.parametrize("name", list(StrategyName))
def test_every_strategy_has_a_params_model(name):
    assert name in PARAMS_BY_STRATEGY


@pytest.mark.parametrize(
    ("training", "needle"),
    [
        ({"rounds": -1}, "rounds"),
        ({"learners": 2, "min_fit_learners": 3}, "min_fit_learners"),
        ({"learners": 2, "min_available_learners": 5}, "min_available_learners"),
        ({"mode": "hierarchical"}, "cycles"),
        ({"mode": "classic", "cycles": 2}, "cycles"),
        ({"fraction_fit": 0}, "fraction_fit"),
        ({"round_timeout_s": 0}, "round_timeout_s"),
        ({"mode": "hierarchical", "cycles": 1, "clusters": ["a/b"]}, "cluster name"),
    ],
)
def test_invalid_training_values_name_the_field(training, needle):
    errors = errors_of({"training": training})
    text = " ".join(list(errors) + [m for v in errors.values() for m in v])
    assert needle in text


def test_unknown_field_is_rejected():
    errors = errors_of({"trainin": {}})
    assert "trainin" in errors


def test_deploy_without_build_is_rejected():
    errors = errors_of({"post_training_steps": ["deploy_trained_model_image"]})
    assert "build_image_for_trained_model" in " ".join(m for v in errors.values() for m in v)


def test_data_tags_are_validated():
    errors = errors_of({"data_tags": ["../etc"]})
    assert any("data tag" in m for v in errors.values() for m in v)


def test_spec_round_trips_through_json():
    spec = parse_spec({"training": {"strategy": {"name": "FedTrimmedAvg", "params": {"beta": 0.1}},
                                    "learner_config": {"local_epochs": 2, "extra": {"x": 1}}},
                       "platforms": ["linux/arm64"]})
    again = ProjectSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
