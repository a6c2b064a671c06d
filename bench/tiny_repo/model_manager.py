"""A tiny stand-in model for benchmarks: parameters are one float32 array.

``BENCH_PARAM_MB`` sets the parameter size (default: 64 floats). Fitting adds a small step so
aggregation has real work; there is no data to load.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from learner_base import LearnerContext, RoundConfig
from learner_base import ModelManager as BaseModelManager


class ModelManager(BaseModelManager):
    mlflow_flavor = "pyfunc"

    def __init__(self) -> None:
        megabytes = float(os.environ.get("BENCH_PARAM_MB", "0"))
        size = max(64, int(megabytes * 1024 * 1024 / 4))
        self.weights = np.zeros(size, dtype=np.float32)
        self.index = 0

    def set_model_data(self, context: LearnerContext) -> None:
        self.index = context.learner_index

    def get_model(self) -> Any:
        from mlflow.pyfunc.model import PythonModel

        class Constant(PythonModel):
            def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
                return np.zeros(len(model_input))

        return Constant()

    def get_model_parameters(self) -> list[np.ndarray]:
        return [self.weights]

    def set_model_parameters(self, parameters: Sequence[NDArray[Any]]) -> None:
        self.weights = np.asarray(parameters[0], dtype=np.float32)

    def fit_model(self, config: RoundConfig) -> int:
        self.weights = self.weights + np.float32(0.01 * (self.index + 1))
        return 10

    def evaluate_model(self, config: RoundConfig) -> tuple[float, float, int]:
        loss = float(abs(self.weights[:64]).mean())
        return loss, 1.0 / (1.0 + loss), 10

    def pip_requirements(self) -> list[str]:
        return ["numpy"]
