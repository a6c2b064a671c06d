"""Logistic regression on scikit-learn's bundled digits data set, federated with FLOps."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from data import load_partition
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from learner_base import LearnerContext, RoundConfig
from learner_base import ModelManager as BaseModelManager

N_CLASSES = 10
N_FEATURES = 64


class ModelManager(BaseModelManager):
    mlflow_flavor = "sklearn"

    def __init__(self) -> None:
        # No data here: the aggregator instantiates this class too.
        self.model = LogisticRegression(max_iter=20, warm_start=True)
        self.model.classes_ = np.arange(N_CLASSES)
        self.model.coef_ = np.zeros((N_CLASSES, N_FEATURES))
        self.model.intercept_ = np.zeros(N_CLASSES)
        self.x_train = self.y_train = self.x_test = self.y_test = None

    def set_model_data(self, context: LearnerContext) -> None:
        self.x_train, self.y_train, self.x_test, self.y_test = load_partition(context)

    def get_model(self) -> Any:
        return self.model

    def get_model_parameters(self) -> list[np.ndarray]:
        return [self.model.coef_.copy(), self.model.intercept_.copy()]

    def set_model_parameters(self, parameters: Sequence[np.ndarray]) -> None:
        self.model.coef_ = np.array(parameters[0], dtype=float)
        self.model.intercept_ = np.array(parameters[1], dtype=float)

    def fit_model(self, config: RoundConfig) -> int:
        self.model.max_iter = 20 * config.local_epochs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.x_train, self.y_train)
        return len(self.x_train)

    def evaluate_model(self, config: RoundConfig) -> tuple[float, float, int]:
        probabilities = self.model.predict_proba(self.x_test)
        loss = log_loss(self.y_test, probabilities, labels=list(range(N_CLASSES)))
        accuracy = float(self.model.score(self.x_test, self.y_test))
        return float(loss), accuracy, len(self.x_test)

    def input_example(self) -> Any:
        return np.zeros((2, N_FEATURES))
