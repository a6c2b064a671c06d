"""Run ModelManagers written for the original FLOps, whose methods take no arguments.

The original FLOps called ``set_model_data()``, ``fit_model()`` and ``evaluate_model()``
without arguments. :func:`adapt` wraps such a manager so the runtime can call every method
with its context or round configuration; methods that take one are called with it.
"""

from __future__ import annotations

import inspect
from typing import Any

from learner_base.model_manager import LearnerContext, RoundConfig

ADAPTED_METHODS = ("set_model_data", "fit_model", "evaluate_model")


def takes_argument(method: Any) -> bool:
    """Whether ``method`` (bound) accepts a positional argument."""
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # builtins without a signature: assume the current form
        return True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.VAR_POSITIONAL)
    return any(p.kind in kinds for p in signature.parameters.values())


class LegacyModelManager:
    """An original-FLOps ModelManager with the current method signatures.

    Every other attribute is the wrapped manager's (``__wrapped__``).
    """

    def __init__(self, inner: Any) -> None:
        self.__wrapped__ = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)

    def _call(self, name: str, argument: object) -> Any:
        method = getattr(self.__wrapped__, name)
        return method(argument) if takes_argument(method) else method()

    def set_model_data(self, context: LearnerContext) -> None:
        """Load the data (``flops_utils.load_dataset()`` finds ``context`` published)."""
        self._call("set_model_data", context)

    def fit_model(self, config: RoundConfig) -> Any:
        """Train one round."""
        return self._call("fit_model", config)

    def evaluate_model(self, config: RoundConfig) -> Any:
        """Evaluate on local test data."""
        return self._call("evaluate_model", config)


def adapt(manager: Any) -> Any:
    """Return ``manager``, wrapped in :class:`LegacyModelManager` if a method takes no argument."""
    if all(takes_argument(getattr(manager, name)) for name in ADAPTED_METHODS):
        return manager
    return LegacyModelManager(manager)


def unwrap(manager: Any) -> Any:
    """Return the repository's own object behind an adapter."""
    return getattr(manager, "__wrapped__", manager)
