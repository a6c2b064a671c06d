"""Checks of what a repository's ModelManager returns, applied at every call (pure).

Every message names the file, the method, what it returned and what it must return, e.g.
``model_manager.py: ModelManager.fit_model() returned 0.5 (float); it must return the number
of training examples used, a positive int (e.g. len(x_train))``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flops_contracts.errors import ContractError
from learner_base.model_manager import Parameters

Shapes = tuple[tuple[int, ...], ...]

_PARAMETERS_RULE = "it must return a non-empty list of numpy arrays"


@dataclasses.dataclass(frozen=True)
class CallSite:
    """Where the checked methods live: a file of the repository and the class in it."""

    file: str = "model_manager.py"
    cls: str = "ModelManager"

    def method(self, name: str) -> str:
        """Return ``file: Class.name()`` for messages."""
        return f"{self.file}: {self.cls}.{name}()"


def describe(value: object, *, limit: int = 80) -> str:
    """Return a short ``repr`` of ``value`` followed by its type, e.g. ``0.5 (float)``."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_fit_result(value: object, *, site: CallSite) -> int:
    """Return ``fit_model``'s result as an int.

    Raises
    ------
    ContractError
        If it is not a positive integer (a float, a bool, zero, a tuple, ...).
    """
    if _is_int(value) and int(value) > 0:  # type: ignore[call-overload]
        return int(value)  # type: ignore[call-overload,no-any-return]
    raise ContractError(
        f"{site.method('fit_model')} returned {describe(value)}; it must return the number of "
        "training examples used, a positive int (e.g. len(x_train))"
    )


def check_evaluate_result(value: object, *, site: CallSite) -> tuple[float, float, int]:
    """Return ``evaluate_model``'s result as ``(loss, accuracy, examples)``.

    Raises
    ------
    ContractError
        If it is not a 3-tuple of a finite loss, a finite accuracy and a positive int.
    """
    rule = ("it must return a tuple (loss, accuracy, number_of_examples): two finite numbers "
            "and a positive int, e.g. (0.31, 0.92, len(x_test))")
    where = site.method("evaluate_model")
    if not isinstance(value, tuple | list) or len(value) != 3:
        raise ContractError(f"{where} returned {describe(value)}; {rule}")
    loss, accuracy, examples = value
    for name, item in (("loss", loss), ("accuracy", accuracy)):
        if not _is_real(item) or not np.isfinite(float(item)):
            raise ContractError(f"{where} returned {name} {describe(item)}; {rule}")
    if not _is_int(examples) or int(examples) <= 0:
        raise ContractError(f"{where} returned number_of_examples {describe(examples)}; {rule}")
    return float(loss), float(accuracy), int(examples)


def check_parameters(
    parameters: object,
    *,
    source: str,
    expected: Shapes | None = None,
    when: str = "",
) -> Parameters:
    """Check that ``parameters`` is a non-empty list of finite numpy arrays of known shapes.

    Parameters
    ----------
    parameters
        What the method returned.
    source
        The method, for messages (``model_manager.py: ModelManager.get_model_parameters()``).
    expected
        The shapes the arrays must have (those of an earlier round), or ``None``.
    when
        When the call happened, for messages (``" after fit_model() in round 2"``).

    Raises
    ------
    ContractError
        Naming ``source`` and what is wrong.
    """
    if not isinstance(parameters, list | tuple):
        raise ContractError(f"{source} returned {describe(parameters)}{when}; "
                            f"{_PARAMETERS_RULE}")
    if not parameters:
        raise ContractError(f"{source} returned an empty list{when}; the model has no "
                            f"parameters, and {_PARAMETERS_RULE}")
    for i, array in enumerate(parameters):
        if not isinstance(array, np.ndarray):
            raise ContractError(f"{source} returned item {i} {describe(array)}{when}; "
                                f"{_PARAMETERS_RULE}")
    arrays = list(parameters)
    if expected is not None:
        _check_shapes(shapes_of(arrays), expected, source=source, when=when)
    for i, array in enumerate(arrays):
        if not all_finite(array):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ContractError(
                f"{source} returned array {i} (shape {array.shape}) with {bad} NaN or infinite "
                f"value(s){when}; it must return finite numbers (training diverged: lower the "
                "learning rate or check the data)"
            )
    return arrays


def all_finite(array: NDArray[Any]) -> bool:
    """Whether ``array`` holds no NaN or infinity (integers and other kinds always do).

    For real floats this is two reductions without a temporary array (``min`` and ``max``
    propagate NaN, and an infinity is an extreme): a tenth of ``np.isfinite(array).all()``'s
    time at 100 MB. Complex arrays take the element-wise test.
    """
    kind = array.dtype.kind
    if kind not in "fc" or array.size == 0:
        return True
    if kind == "f":
        return bool(np.isfinite(array.min()) and np.isfinite(array.max()))
    return bool(np.isfinite(array).all())


def shapes_of(arrays: Sequence[NDArray[Any]]) -> Shapes:
    """Return the shapes of ``arrays``."""
    return tuple(tuple(int(n) for n in a.shape) for a in arrays)


def _check_shapes(actual: Shapes, expected: Shapes, *, source: str, when: str) -> None:
    rule = ("it must return arrays of the same shapes every round (the aggregator combines "
            "them element by element)")
    if len(actual) != len(expected):
        raise ContractError(f"{source} returned {len(actual)} arrays{when}, but "
                            f"{len(expected)} before; {rule}")
    for i, (now, before) in enumerate(zip(actual, expected, strict=True)):
        if now != before:
            raise ContractError(f"{source} returned array {i} with shape {now}{when}, but "
                                f"{before} before; {rule}")
