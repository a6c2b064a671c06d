"""A trained model is always saved: real MLflow store, models loaded back and asked to predict."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from aggregator.model_saving import trusted_library_types
from aggregator.tracking import MlflowTracker
from tests.fixtures.mlflow_target import mlflow_pointed_at

X, Y = load_digits(return_X_y=True)


class Manager:
    """A duck-typed ModelManager: only what logging needs, no optional methods."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_model(self) -> Any:
        return self.model


def halve(values: Any) -> Any:
    """A repository's own function: skops does not trust it, pickle can save it."""
    return np.asarray(values) / 2.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module (creating an SQLite store takes seconds)."""
    return tmp_path_factory.mktemp("mlflow")


def uri(store: Path) -> str:
    return f"sqlite:///{store / 'mlflow.db'}"


def log(store: Path, manager: Any, name: str) -> Any:
    tracker = MlflowTracker(tracking_uri=uri(store),
                            experiment_name="saving", run_name=name,
                            artifact_location=str(store / "artifacts"))
    tracker.start(params={}, tags={})
    model = tracker.log_model(manager, registered_model_name=name, tags={"flops.test": "1"})
    tracker.finish()
    return model


def predict(store: Path, model_uri: str, rows: np.ndarray) -> np.ndarray:
    with mlflow_pointed_at(uri(store)):
        return np.asarray(mlflow.pyfunc.load_model(model_uri).predict(rows))


def test_pointing_is_undone_when_the_block_raises(monkeypatch):
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://before")
    before = mlflow.get_tracking_uri()
    with pytest.raises(RuntimeError), mlflow_pointed_at("http://127.0.0.1:9"):
        assert mlflow.get_registry_uri() == "http://127.0.0.1:9"
        raise RuntimeError("boom")
    assert os.environ["MLFLOW_REGISTRY_URI"] == "http://before"
    assert mlflow.get_tracking_uri() == before


def test_mlp_classifier_is_saved_with_the_sklearn_flavor(store):
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0).fit(X, Y)
    model = log(store, Manager(mlp), "mlp")
    assert model.flavor == "sklearn" and model.warning is None and model.version == "1"
    assert (predict(store, model.registry_uri, X[:20]) == mlp.predict(X[:20])).all()


def test_pipeline_is_saved_with_the_sklearn_flavor(store):
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("classify", LogisticRegression(max_iter=200))]).fit(X, Y)
    model = log(store, Manager(pipeline), "pipeline")
    assert model.flavor == "sklearn" and model.warning is None
    assert (predict(store, model.model_uri, X[:20]) == pipeline.predict(X[:20])).all()


def test_pipeline_with_a_repository_function_falls_back_to_a_pickled_model(store):
    pipeline = Pipeline([("halve", FunctionTransformer(halve)),
                         ("classify", LogisticRegression(max_iter=200))]).fit(X, Y)
    model = log(store, Manager(pipeline), "custom")
    assert model.flavor == "pyfunc" and model.version == "1"
    assert model.warning is not None and "generic pickled pyfunc model" in model.warning
    assert "untrusted types" in model.warning
    assert (predict(store, model.registry_uri, X[:20]) == pipeline.predict(X[:20])).all()


def test_flavor_options_from_the_repository_are_used(store):
    pipeline = Pipeline([("halve", FunctionTransformer(halve)),
                         ("classify", LogisticRegression(max_iter=200))]).fit(X, Y)

    class WithOptions(Manager):
        def mlflow_log_options(self) -> dict[str, Any]:
            return {"serialization_format": "cloudpickle"}

    model = log(store, WithOptions(pipeline), "options")
    assert model.flavor == "sklearn" and model.warning is None
    assert (predict(store, model.model_uri, X[:20]) == pipeline.predict(X[:20])).all()


def test_pytorch_module_is_saved_with_the_pytorch_flavor(store):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    model = log(store, Manager(net), "torch")
    assert model.flavor == "pytorch" and model.warning is None
    rows = X[:5].astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(rows)).numpy()
    assert np.allclose(predict(store, model.model_uri, rows), expected, atol=1e-5)


def test_only_library_types_are_trusted():
    untrusted = ["sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
                 "numpy.random._mt19937.MT19937", "my_repo.transforms.halve", "builtins.eval"]
    assert trusted_library_types(untrusted) == [
        "numpy.random._mt19937.MT19937",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    ]


def test_likely_flavors_come_from_the_declaration_or_the_loaded_libraries():
    from aggregator.model_saving import likely_flavors

    class Declared:
        mlflow_flavor = "pytorch"

    assert likely_flavors(Declared(), ["sklearn"]) == ["pytorch", "pyfunc"]
    assert likely_flavors(object(), ["numpy", "sklearn.linear_model", "torch"]) == [
        "sklearn", "pytorch", "pyfunc"]
    assert likely_flavors(object(), ["numpy"]) == ["pyfunc"]


def test_input_example_is_kept_without_mlflow_loading_the_model_back(store, monkeypatch):
    import mlflow.models.utils

    loaded_back: list[str] = []

    def validating(model_uri: str, serving_input: Any) -> None:
        loaded_back.append(model_uri)

    monkeypatch.setattr(mlflow.models.utils, "_validate_serving_input", validating)
    classifier = LogisticRegression(max_iter=200).fit(X, Y)

    class WithExample(Manager):
        def input_example(self) -> Any:
            return X[:2]

    model = log(store, WithExample(classifier), "example")
    assert model.flavor == "sklearn" and model.warning is None and loaded_back == []
    with mlflow_pointed_at(uri(store)):
        info = mlflow.models.get_model_info(model.model_uri)
    assert info.saved_input_example_info is not None and info.signature is not None
    assert (predict(store, model.model_uri, X[:20]) == classifier.predict(X[:20])).all()

    assert mlflow.models.utils._validate_serving_input is validating  # restored after logging
