"""A repository written for the original FLOps (oakestra/addon-FLOps) trains unchanged.

The repository is written here in the original shape: ``flops_utils`` templates with methods
without arguments, ``load_dataset()`` (a ``datasets``-style data set with ``image`` and
``label``), package-qualified imports, ``mlflow.sklearn.autolog()`` at import and an
MLflow-exported ``conda.yaml`` with the original pins. The digits data is served through the
data plane (MNIST cannot be downloaded here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.repos import git_repo
from tests.integration.conftest import run_train_local
from tests.pipeline.test_pipeline import Api, api  # noqa: F401 - the flops-up stack fixture

pytestmark = pytest.mark.integration

PACKAGE = "flops_ml_repo_digits_sklearn"

MODEL_MANAGER = f'''
import warnings
from typing import Any, Tuple

import mlflow
import mlflow.sklearn
import numpy as np
from flops_utils.ml_repo_templates import ModelManagerTemplate
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from {PACKAGE}.data_manager import DataManager

mlflow.sklearn.autolog()


class ModelManager(ModelManagerTemplate):
    def __init__(self):
        self.model = LogisticRegression(max_iter=20, warm_start=True)
        self._set_init_params()

    def _set_init_params(self) -> None:
        self.model.classes_ = np.array([i for i in range(10)])
        self.model.coef_ = np.zeros((10, 64))
        self.model.intercept_ = np.zeros((10,))

    def set_model_data(self) -> None:
        (self.x_train, self.x_test), (self.y_train, self.y_test) = DataManager().get_data()

    def get_model(self) -> Any:
        return self.model

    def get_model_parameters(self) -> Any:
        return [self.model.coef_, self.model.intercept_]

    def set_model_parameters(self, parameters) -> None:
        self.model.coef_ = parameters[0]
        self.model.intercept_ = parameters[1]

    def fit_model(self) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(self.x_train, self.y_train)
        return len(self.x_train)

    def evaluate_model(self) -> Tuple[Any, Any, int]:
        loss = log_loss(self.y_test, self.model.predict_proba(self.x_test), labels=list(range(10)))
        accuracy = self.model.score(self.x_test, self.y_test)
        return loss, accuracy, len(self.x_test)
'''

DATA_MANAGER = '''
from typing import Any, Tuple

from flops_utils.ml_repo_building_blocks import load_dataset
from flops_utils.ml_repo_templates import DataManagerTemplate


class DataManager(DataManagerTemplate):
    def __init__(self):
        (self.x_train, self.x_test), (self.y_train, self.y_test) = self._prepare_data()

    def _prepare_data(self) -> Any:
        dataset = load_dataset()
        dataset.set_format("numpy")
        split = dataset.train_test_split(test_size=0.2, seed=42)
        train, test = split["train"], split["test"]
        x_train = train["image"].reshape((len(train), -1)) / 16.0
        x_test = test["image"].reshape((len(test), -1)) / 16.0
        return (x_train, x_test), (train["label"], test["label"])

    def get_data(self) -> Tuple[Any, Any]:
        return (self.x_train, self.x_test), (self.y_train, self.y_test)
'''

CONDA_YAML = """channels:
- conda-forge
dependencies:
- python=3.10.14
- pip<=24.0
- pip:
  - mlflow==2.12.1
  - numpy==1.26.4
  - scikit-learn==1.4.2
  - scipy==1.13.0
name: mlflow-env
"""


def original_repo(parent: Path) -> Path:
    return git_repo(parent / PACKAGE, {"model_manager.py": MODEL_MANAGER,
                                       "data_manager.py": DATA_MANAGER,
                                       "conda.yaml": CONDA_YAML,
                                       "README.md": "An original FLOps repository.\n"})


def runs_in_experiment_of(client: MlflowClient, run_id: str) -> int:
    experiment = client.get_run(run_id).info.experiment_id
    return len(client.search_runs([experiment]))


def test_original_repository_trains_with_train_local(tmp_path: Path) -> None:
    repo = original_repo(tmp_path / "repos")
    code, summary, log = run_train_local(
        [str(repo), "--learners", "3", "--rounds", "3", "--data", "iid"], tmp_path / "run",
        timeout=600)
    assert code == 0, log
    assert summary["accuracy"] >= 0.85, summary
    warnings = "\n".join(summary["warnings"])
    assert "conda.yaml: 'numpy==1.26.4' conflicts with FLOps' pin numpy==" in warnings
    assert "conda.yaml: 'scikit-learn==1.4.2' conflicts with FLOps' pin" in warnings
    assert "'mlflow==2.12.1' is served by the FLOps runtime" in warnings
    # autolog at import stayed out: one run (FLOps'), no MLflow store beside the processes
    client = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"])
    assert runs_in_experiment_of(client, summary["mlflow_run_id"]) == 1
    assert not list(tmp_path.rglob("mlruns"))


def test_original_repository_trains_through_the_api(api: Api, tmp_path: Path) -> None:  # noqa: F811
    repo = original_repo(tmp_path / "repos")
    spec = {"name": "original-flops", "training": {"rounds": 3, "learners": 3},
            "mock_data": {"partitioner": "iid", "seed": 0}}
    created = api.post("projects", {"repository": {"url": repo.as_uri()}, "spec": spec})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    project = api.wait(pid, lambda p: p["phase"] == "completed", timeout=900,
                       what="completed")
    assert project["progress"]["metrics"]["accuracy"] >= 0.85, project["progress"]
    warnings = [e["data"]["message"] for e in api.events(pid)
                if e["event"] == "log" and e["data"].get("level") == "warning"]
    assert any("conda.yaml: 'numpy==1.26.4' conflicts with FLOps' pin" in w for w in warnings)
    client = MlflowClient(tracking_uri=api.mlflow_url)
    assert runs_in_experiment_of(client, project["model"]["mlflow_run_id"]) == 1
