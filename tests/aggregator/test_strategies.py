import numpy as np
import pytest
from flwr.server.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedAvgM,
)

from aggregator.flower_api import build_flower_strategy
from aggregator.runtime import learner_round_config
from flops_contracts.spec import parse_spec
from flops_contracts.strategy_spec import StrategyName

PARAMS = {StrategyName.FEDPROX: {"proximal_mu": 0.1}}


@pytest.mark.parametrize("name", list(StrategyName))
def test_every_strategy_builds_with_flower(name):
    spec = parse_spec({"training": {"learners": 3, "strategy": {
        "name": name.value, "params": PARAMS.get(name, {})}}})
    strategy = build_flower_strategy(spec.training, initial_parameters=[np.zeros(2)],
                                     min_fit=2, min_evaluate=2)
    assert type(strategy).__name__ == name.value
    assert isinstance(strategy, FedAvg)  # every built-in strategy is one of Flower's FedAvg family
    assert strategy.min_fit_clients == 2


def test_hyper_parameters_reach_flower():
    spec = parse_spec({"training": {"strategy": {"name": "FedAvgM", "params": {
        "server_momentum": 0.5}}}})
    strategy = build_flower_strategy(spec.training, initial_parameters=[np.zeros(2)],
                                     min_fit=1, min_evaluate=1)
    assert isinstance(strategy, FedAvgM)
    assert strategy.server_momentum == 0.5


@pytest.mark.parametrize(("clipping", "cls"), [
    ("fixed", DifferentialPrivacyServerSideFixedClipping),
    ("adaptive", DifferentialPrivacyServerSideAdaptiveClipping)])
def test_differential_privacy_wraps_the_strategy(clipping, cls):
    spec = parse_spec({"training": {"differential_privacy": {
        "clipping": clipping, "noise_multiplier": 0.5, "clipped_count_stddev": 1.0}}})
    strategy = build_flower_strategy(spec.training, initial_parameters=[np.zeros(2)],
                                     min_fit=2, min_evaluate=2)
    assert isinstance(strategy, cls)


def test_learner_round_config_flattens_learner_config():
    spec = parse_spec({"training": {"learner_config": {
        "local_epochs": 3, "batch_size": 8, "learning_rate": 0.1, "extra": {"dropout": 0.2}}}})
    assert learner_round_config(spec.training) == {
        "local_epochs": 3, "batch_size": 8, "learning_rate": 0.1, "dropout": 0.2}


def test_adaptive_dp_with_too_much_noise_is_rejected_by_the_spec():
    from flops_contracts.errors import FlopsError

    with pytest.raises(FlopsError, match="clipped_count_stddev"):
        parse_spec({"training": {"differential_privacy": {
            "clipping": "adaptive", "noise_multiplier": 0.5}}})


@pytest.mark.parametrize("name", ["FedAvg", "FedMedian", "FedTrimmedAvg", "Krum", "FedAdam"])
def test_aggregation_with_the_one_copy_codec_equals_flowers(name):
    """The strategies read learners' answers with FLOps' codec and get Flower's results."""
    from flwr.common import (
        Code,
        FitRes,
        Status,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )

    spec = parse_spec({"training": {"learners": 4, "strategy": {"name": name}}})
    rng = np.random.default_rng(0)
    answers: list[list[np.ndarray]] = [
        [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=5)] for _ in range(4)]
    results = [(None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), 10 * (i + 1),
                             {})) for i, arrays in enumerate(answers)]
    strategy = build_flower_strategy(spec.training, initial_parameters=answers[0],
                                     min_fit=4, min_evaluate=4)
    strategy.initialize_parameters(None)  # type: ignore[arg-type]  # FedOpt keeps the weights
    aggregated, _ = strategy.aggregate_fit(1, results, [])  # type: ignore[arg-type]
    assert aggregated is not None
    got = parameters_to_ndarrays(aggregated)  # Flower's reader understands the bytes
    weights = np.array([10.0, 20.0, 30.0, 40.0])
    if name == "FedAvg":
        for i, array in enumerate(got):
            want = sum(w * a[i] for w, a in zip(weights, answers, strict=True)) / weights.sum()
            np.testing.assert_allclose(array, want, rtol=1e-5)
    assert [a.shape for a in got] == [(3, 4), (5,)]
    assert all(a.flags.writeable for a in got)
