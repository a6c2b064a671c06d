"""The base classes repositories of the original FLOps implement (methods without arguments)."""

from __future__ import annotations

import abc
from typing import Any


class DataManagerTemplate(abc.ABC):
    """Loads and prepares a learner's data; used by the repository's ModelManager."""

    @abc.abstractmethod
    def _prepare_data(self) -> Any:
        """Load the data with ``load_dataset()`` and preprocess it."""

    @abc.abstractmethod
    def get_data(self) -> tuple[Any, Any]:
        """Return the prepared training and test data."""


class ModelManagerTemplate(abc.ABC):
    """A repository's ModelManager in the original FLOps shape.

    The constructor builds the model without loading data (the aggregator instantiates the
    class too); only learners call :meth:`set_model_data`.
    """

    @abc.abstractmethod
    def set_model_data(self) -> None:
        """Load this learner's data (learners only)."""

    @abc.abstractmethod
    def get_model(self) -> Any:
        """Return the framework model object (logged to MLflow)."""

    @abc.abstractmethod
    def get_model_parameters(self) -> Any:
        """Return the model parameters as a list of NumPy arrays."""

    @abc.abstractmethod
    def set_model_parameters(self, parameters: Any) -> None:
        """Replace the model parameters."""

    @abc.abstractmethod
    def fit_model(self) -> int:
        """Train one round; return the number of training examples."""

    @abc.abstractmethod
    def evaluate_model(self) -> tuple[Any, Any, int]:
        """Return ``(loss, accuracy, number_of_test_examples)``."""
