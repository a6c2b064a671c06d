"""The repository contract: what a user's ML repository implements.

A repository provides ``model_manager.py`` at its root defining a class ``ModelManager``
(ideally a subclass of :class:`ModelManager` below) plus a dependency file
(``requirements.txt``, ``pyproject.toml`` or ``conda.yaml``). FLOps instantiates the class on
every learner and on the aggregator; only learners call :meth:`ModelManager.set_model_data`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from numpy.typing import NDArray

from flops_contracts.spec import ConfigValue

Parameters = list[NDArray[Any]]
"""Model parameters: a list of NumPy arrays, exchanged with the aggregator every round."""

REQUIRED_METHODS: tuple[str, ...] = (
    "set_model_data",
    "get_model",
    "get_model_parameters",
    "set_model_parameters",
    "fit_model",
    "evaluate_model",
)


@dataclasses.dataclass(frozen=True)
class RoundConfig:
    """Per-round configuration sent by the aggregator.

    Attributes
    ----------
    server_round
        The current round (1-based).
    local_epochs, batch_size, learning_rate
        Training settings from the project spec's ``learner_config``.
    proximal_mu
        FedProx's proximal term weight (``None`` for other strategies). A learner that honours
        it adds ``mu/2 * ||w - w_global||^2`` to its loss.
    extra
        Any further keys from ``learner_config.extra``.
    """

    server_round: int = 0
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float | None = None
    proximal_mu: float | None = None
    extra: Mapping[str, ConfigValue] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_flower(cls, config: Mapping[str, ConfigValue]) -> RoundConfig:
        """Build from the flat dictionary Flower carries."""
        known = {"server_round", "local_epochs", "batch_size", "learning_rate", "proximal_mu"}
        lr = config.get("learning_rate")
        mu = config.get("proximal_mu")
        return cls(
            server_round=int(config.get("server_round", 0)),
            local_epochs=int(config.get("local_epochs", 1)),
            batch_size=int(config.get("batch_size", 32)),
            learning_rate=float(lr) if lr is not None else None,
            proximal_mu=float(mu) if mu is not None else None,
            extra={k: v for k, v in config.items() if k not in known},
        )


@dataclasses.dataclass(frozen=True)
class LearnerContext:
    """What a learner knows about its place in the federation.

    Attributes
    ----------
    learner_index, learner_count
        This learner's index among ``learner_count`` learners (of its cluster).
    data_tags
        The project's data tags: the data sets this learner should train on.
    seed
        A seed for reproducible local shuffling and splitting.
    data_server
        Location of this node's ML data server (``grpc://host:port``), or ``None`` when the
        repository brings its own data.
    """

    learner_index: int = 0
    learner_count: int = 1
    data_tags: tuple[str, ...] = ()
    seed: int = 0
    data_server: str | None = None


class ModelManager(abc.ABC):
    """Base class for a repository's ``ModelManager``.

    The constructor must build the model but must **not** load data: the aggregator instantiates
    the class too (for initial parameters and to log the final model), and it has no data.

    Attributes
    ----------
    mlflow_flavor
        MLflow flavor used to log the model (``"sklearn"``, ``"pytorch"``, ...). ``None`` lets
        FLOps infer it from the type of :meth:`get_model`'s result.
    """

    mlflow_flavor: ClassVar[str | None] = None

    @abc.abstractmethod
    def set_model_data(self, context: LearnerContext) -> None:
        """Load and prepare this learner's training and test data (learners only)."""

    @abc.abstractmethod
    def get_model(self) -> Any:
        """Return the framework model object (logged to MLflow with its flavor)."""

    @abc.abstractmethod
    def get_model_parameters(self) -> Parameters:
        """Return the model parameters as a list of NumPy arrays."""

    @abc.abstractmethod
    def set_model_parameters(self, parameters: Sequence[NDArray[Any]]) -> None:
        """Replace the model parameters with ``parameters`` (same shapes as returned)."""

    @abc.abstractmethod
    def fit_model(self, config: RoundConfig) -> int:
        """Train on local data for one round; return the number of training examples used."""

    @abc.abstractmethod
    def evaluate_model(self, config: RoundConfig) -> tuple[float, float, int]:
        """Evaluate on local test data; return ``(loss, accuracy, number_of_examples)``."""

    def input_example(self) -> Any | None:
        """Return a small input example (array or DataFrame) for the MLflow model signature."""
        return None

    def pip_requirements(self) -> list[str] | None:
        """Return pip requirements of the logged model (default: inferred from the flavor)."""
        return None

    def mlflow_log_options(self) -> dict[str, Any]:
        """Return extra keyword arguments for ``mlflow.<flavor>.log_model``.

        For example ``{"skops_trusted_types": ["mypackage.MyTransformer"]}`` for an sklearn
        model holding a class of the repository, or ``{"serialization_format": "cloudpickle"}``.
        FLOps passes them after its own defaults; if the flavor still cannot save the model,
        FLOps logs it as a generic pickled pyfunc model and reports a warning.
        """
        return {}


OPTIONAL_METHODS: tuple[str, ...] = ("input_example", "pip_requirements", "mlflow_log_options")
"""Methods a ModelManager may leave out (a duck-typed class need not define them)."""


def call_optional(manager: object, name: str) -> Any | None:
    """Call the optional method ``name`` of ``manager``; ``None`` if it does not define it."""
    method = getattr(manager, name, None)
    return method() if callable(method) else None
