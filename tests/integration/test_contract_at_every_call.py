"""A repository that breaks the contract during training fails with a message naming it.

Each test runs ``flops train-local`` (real Flower, real MLflow store, one process per learner)
on the digits example with one method overridden to make one mistake.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.integration.conftest import EXAMPLES, run_train_local

MISTAKES = {
    "fit_returns_float": (
        "def fit_model(self, config):\n    super().fit_model(config)\n    return 0.5\n",
        ["model_manager.py: ModelManager.fit_model() returned 0.5 (float)",
         "it must return the number of training examples used, a positive int"],
    ),
    "evaluate_returns_dict": (
        "def evaluate_model(self, config):\n"
        "    loss, accuracy, n = super().evaluate_model(config)\n"
        "    return {'loss': loss, 'accuracy': accuracy}\n",
        ["model_manager.py: ModelManager.evaluate_model() returned {'loss':",
         "(dict); it must return a tuple (loss, accuracy, number_of_examples)"],
    ),
    "parameters_not_a_list": (
        "def get_model_parameters(self):\n"
        "    if self.x_train is None:\n"
        "        return super().get_model_parameters()\n"
        "    return self.model.coef_\n",
        ["model_manager.py: ModelManager.get_model_parameters() returned array([[",
         "(ndarray) after fit_model() in round 1",
         "it must return a non-empty list of numpy arrays"],
    ),
    "shapes_change": (
        "def get_model_parameters(self):\n"
        "    coef, intercept = super().get_model_parameters()\n"
        "    if self.x_train is None:\n"
        "        return [coef, intercept]\n"
        "    return [coef[:, :10], intercept]\n",
        ["model_manager.py: ModelManager.get_model_parameters() returned array 0 with shape "
         "(10, 10) after fit_model() in round 1, but (10, 64) before",
         "it must return arrays of the same shapes every round"],
    ),
    "nan_parameters": (
        "def fit_model(self, config):\n"
        "    n = super().fit_model(config)\n"
        "    self.model.coef_[0, 0] = float('nan')\n"
        "    return n\n",
        ["model_manager.py: ModelManager.get_model_parameters() returned array 0 "
         "(shape (10, 64)) with 1 NaN or infinite value(s) after fit_model() in round 1",
         "it must return finite numbers"],
    ),
}


def broken_repo(tmp_path: Path, method: str) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "digits_sklearn", repo,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with (repo / "model_manager.py").open("a") as handle:
        handle.write("\n\n_Correct = ModelManager\n\n\nclass ModelManager(_Correct):\n")
        handle.write(textwrap.indent(method, "    "))
    return repo


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_contract_mistake_fails_the_learner_with_a_clear_message(tmp_path, mistake):
    method, needles = MISTAKES[mistake]
    code, summary, log = run_train_local(
        [str(broken_repo(tmp_path, method)), "--learners", "2", "--rounds", "2"],
        tmp_path / "run", timeout=240)
    assert code == 1, log
    reason = summary["reason"]
    for needle in needles:
        assert needle in reason, reason
    assert "connection" not in reason and "ZeroDivisionError" not in reason


DUCK_TYPED = '''
"""A ModelManager that does not subclass learner_base.ModelManager (no optional methods)."""

import numpy as np
from data import load_partition
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

CLASSES = np.arange(10)


class ModelManager:
    def __init__(self):
        self.model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.05,
                                   random_state=0)
        self.model.classes_ = CLASSES
        self.model.coef_ = np.zeros((10, 64))
        self.model.intercept_ = np.zeros(10)

    def set_model_data(self, context):
        self.x_train, self.y_train, self.x_test, self.y_test = load_partition(context)

    def get_model(self):
        return self.model

    def get_model_parameters(self):
        return [self.model.coef_.copy(), self.model.intercept_.copy()]

    def set_model_parameters(self, parameters):
        self.model.coef_, self.model.intercept_ = (np.array(p) for p in parameters)

    def fit_model(self, config):
        for _ in range(5):
            self.model.partial_fit(self.x_train, self.y_train, classes=CLASSES)
        return len(self.x_train)

    def evaluate_model(self, config):
        loss = log_loss(self.y_test, self.model.predict_proba(self.x_test), labels=CLASSES)
        return float(loss), float(self.model.score(self.x_test, self.y_test)), len(self.x_test)
'''


def test_duck_typed_model_manager_trains_and_completes(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "digits_sklearn", repo,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "model_manager.py").write_text(DUCK_TYPED)
    code, summary, log = run_train_local([str(repo), "--learners", "2", "--rounds", "2"],
                                         tmp_path / "run", timeout=240)
    assert code == 0, log
    assert summary["status"] == "completed" and summary["model_uri"], summary
