"""Multinomial logistic regression (SGD) on scikit-learn's bundled digits data set, with FLOps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from data import load_partition
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

from learner_base import LearnerContext, RoundConfig
from learner_base import ModelManager as BaseModelManager

N_CLASSES = 10
N_FEATURES = 64
CLASSES = np.arange(N_CLASSES)
PASSES_PER_EPOCH = 10


class ModelManager(BaseModelManager):
    mlflow_flavor = "sklearn"

    def __init__(self) -> None:
        # No data here: the aggregator instantiates this class too.
        # SGD with partial_fit knows all 10 classes even when a learner's data lacks some
        # (non-IID partitions); LogisticRegression would refit its class list per learner.
        self.model = SGDClassifier(
            loss="log_loss", alpha=1e-4, learning_rate="constant", eta0=0.05, random_state=0
        )
        self.model.classes_ = CLASSES
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
        if config.learning_rate is not None:
            self.model.eta0 = config.learning_rate
        rng = np.random.default_rng(config.server_round)
        for _ in range(PASSES_PER_EPOCH * config.local_epochs):
            order = rng.permutation(len(self.x_train))
            self.model.partial_fit(self.x_train[order], self.y_train[order], classes=CLASSES)
        return len(self.x_train)

    def evaluate_model(self, config: RoundConfig) -> tuple[float, float, int]:
        probabilities = self.model.predict_proba(self.x_test)
        loss = log_loss(self.y_test, probabilities, labels=list(range(N_CLASSES)))
        accuracy = float(self.model.score(self.x_test, self.y_test))
        return float(loss), accuracy, len(self.x_test)

    def input_example(self) -> Any:
        return np.zeros((2, N_FEATURES))
