"""Check decoded input against the model's signature and convert it to what the model takes.

Pure functions. The signature is described by the small dataclasses below (built from MLflow's
schema by :mod:`inference_server.model_loader`), so this module never imports MLflow.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from inference_server.errors import RequestError


class ColumnKind(enum.StrEnum):
    """Value kinds of a column-based signature."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    STRING = "string"
    BINARY = "binary"
    DATETIME = "datetime"
    ANY = "any"


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name (``None`` for positional schemas), kind and dtype."""

    name: str | None
    kind: ColumnKind
    dtype: str = "object"
    required: bool = True


@dataclasses.dataclass(frozen=True)
class ColumnsSignature:
    """A column-based input signature (a table with typed columns)."""

    columns: tuple[ColumnSpec, ...]

    @property
    def named(self) -> bool:
        """Whether the columns have names."""
        return all(column.name is not None for column in self.columns)


@dataclasses.dataclass(frozen=True)
class TensorSignature:
    """A single unnamed tensor input, e.g. ``float64`` of shape ``(-1, 64)``."""

    dtype: str
    shape: tuple[int, ...]


InputSignature = ColumnsSignature | TensorSignature


def conform(data: Any, signature: InputSignature | None) -> Any:
    """Check ``data`` against ``signature`` and return the model input.

    Parameters
    ----------
    data
        A ``pandas.DataFrame`` or ``numpy.ndarray`` (see :mod:`inference_server.payload`).
    signature
        The model's input signature, or ``None`` when the model has none (data passes as is).

    Returns
    -------
    Any
        A DataFrame with the signature's columns in order and dtypes, or an array of the
        tensor's dtype.

    Raises
    ------
    RequestError
        400 naming the wrong column count, missing or unexpected columns, or the first value of
        the wrong type, and saying what to send instead.
    """
    if signature is None:
        return data
    if isinstance(signature, TensorSignature):
        return conform_tensor(data, signature)
    return conform_columns(data, signature)


def conform_tensor(data: Any, signature: TensorSignature) -> np.ndarray[Any, Any]:
    """Convert ``data`` to an array of the tensor's dtype and check its shape.

    Raises
    ------
    RequestError
        For a wrong number of columns / dimensions or a value that is not of the tensor's type.
    """
    names: list[str] | None = None
    if isinstance(data, pd.DataFrame):
        names = [str(c) for c in data.columns]
        array = data.to_numpy(dtype=object) if _any_object(data) else data.to_numpy()
    else:
        array = np.asarray(data)
    expected = signature.shape
    if array.ndim != len(expected):
        if array.ndim == 1 and len(expected) == 2:
            hint = "wrap a single row in a list: [[v0, v1, ...]]"
        else:
            hint = f"send nested lists of shape {_shape_text(expected)} via 'inputs'"
        raise RequestError(
            f"the input has {array.ndim} dimension(s) but the model expects {len(expected)} "
            f"(shape {_shape_text(expected)}); {hint}"
        )
    for axis, (want, got) in enumerate(zip(expected, array.shape, strict=True)):
        if want != -1 and want != got:
            if axis == len(expected) - 1 and len(expected) == 2:
                raise RequestError(
                    f"wrong column count: the model expects {want} columns (features) per row, "
                    f"got {got}; send {want} values per row"
                )
            raise RequestError(
                f"wrong input shape: axis {axis} has size {got} but the model expects {want} "
                f"(shape {_shape_text(expected)})"
            )
    return _cast_array(array, np.dtype(signature.dtype), names=names)


def conform_columns(data: Any, signature: ColumnsSignature) -> Any:
    """Order, check and convert the columns of ``data`` to the column signature.

    Unnamed input (an array, or a DataFrame without column names) is matched by position.

    Raises
    ------
    RequestError
        For a wrong column count, missing or unexpected columns, or values of the wrong type.
    """
    frame = data if isinstance(data, pd.DataFrame) else _frame_from_array(data)
    specs = signature.columns
    if not signature.named or _is_positional(frame):
        if frame.shape[1] != len(specs):
            raise RequestError(
                f"wrong column count: the model expects {len(specs)} columns, got "
                f"{frame.shape[1]}; send {len(specs)} values per row"
                + (f" (columns {_names(specs)})" if signature.named else "")
            )
        if signature.named:
            frame = frame.set_axis([spec.name for spec in specs], axis=1)
        else:
            return pd.DataFrame({i: _cast_column(frame.iloc[:, i], spec, str(i))
                                 for i, spec in enumerate(specs)})
    present = {str(c) for c in frame.columns}
    expected = {spec.name for spec in specs if spec.name is not None}
    missing = [spec.name for spec in specs if spec.required and spec.name not in present]
    unexpected = sorted(present - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing column(s) {_quoted(missing[:10])}")
        if unexpected:
            parts.append(f"unexpected column(s) {_quoted(unexpected[:10])}")
        raise RequestError(
            f"wrong columns: {'; '.join(parts)} ({frame.shape[1]} given, "
            f"{len(specs)} expected); the model expects columns {_names(specs)}"
        )
    frame = frame.rename(columns=str)
    converted = {
        spec.name: _cast_column(frame[spec.name], spec, str(spec.name))
        for spec in specs
        if spec.name in present
    }
    return pd.DataFrame(converted)


def _cast_array(array: np.ndarray[Any, Any], dtype: np.dtype[Any],
                *, names: Sequence[str] | None) -> np.ndarray[Any, Any]:
    if dtype.kind in "iuf":
        numeric = dtype.kind == "f"
        if array.dtype.kind == "b" or (array.dtype.kind not in "iuf" and not _all_numbers(array)):
            index = _first_non_number(array)
            raise RequestError(
                f"wrong type: {_where(index, names)} is {_describe(array[index])}, but the model "
                f"takes {dtype.name} numbers; send "
                + ("numbers" if numeric else "whole numbers") + " only"
            )
        values = array.astype(np.float64) if array.dtype.kind == "O" else array
        if not numeric and values.dtype.kind == "f":
            fractional = np.argwhere(values != np.round(values))
            if len(fractional):
                index = tuple(int(i) for i in fractional[0])
                raise RequestError(
                    f"wrong type: {_where(index, names)} is {values[index]!r}, but the model "
                    f"takes {dtype.name} (whole numbers)"
                )
        return values.astype(dtype, copy=False)
    if dtype.kind == "b" and array.dtype.kind != "b":
        raise RequestError(f"wrong type: the model takes booleans, got {array.dtype.name} values")
    try:
        return array.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise RequestError(
            f"wrong type: cannot convert the input to {dtype.name} ({exc})"
        ) from None


def _cast_column(column: Any, spec: ColumnSpec, name: str) -> Any:
    kind = spec.kind
    if kind is ColumnKind.ANY:
        return column
    values = column.to_numpy(dtype=object)
    checks: dict[ColumnKind, Callable[[Any], bool]] = {
        ColumnKind.INTEGER: _is_integer,
        ColumnKind.FLOAT: _is_number,
        ColumnKind.BOOLEAN: _is_bool,
        ColumnKind.STRING: lambda v: isinstance(v, str),
        ColumnKind.BINARY: lambda v: isinstance(v, bytes | str),
        ColumnKind.DATETIME: lambda v: isinstance(v, str | np.datetime64 | pd.Timestamp),
    }
    check = checks[kind]
    for row, value in enumerate(values):
        if not check(value):
            raise RequestError(
                f"wrong type: column {name!r} row {row} is {_describe(value)}, but the model "
                f"takes {_kind_text(kind)} in this column; send {_kind_text(kind)}"
            )
    if kind is ColumnKind.DATETIME:
        try:
            return pd.to_datetime(column)
        except (TypeError, ValueError) as exc:
            raise RequestError(
                f"wrong type: column {name!r} holds an invalid date ({exc})"
            ) from None
    if kind in (ColumnKind.INTEGER, ColumnKind.FLOAT, ColumnKind.BOOLEAN):
        return column.astype(spec.dtype)
    return column


def _frame_from_array(array: Any) -> Any:
    values = np.asarray(array)
    if values.ndim == 1:
        raise RequestError(
            "the input is a flat list but the model takes rows of columns; wrap a single row "
            "in a list: [[v0, v1, ...]]"
        )
    if values.ndim != 2:
        raise RequestError(
            f"the input has {values.ndim} dimensions but the model takes a table "
            "(a list of rows)"
        )
    return pd.DataFrame(values)


def _is_positional(frame: Any) -> bool:
    return list(frame.columns) == list(range(frame.shape[1]))


def _any_object(frame: Any) -> bool:
    return any(str(dtype) in ("object", "str", "string") for dtype in frame.dtypes)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    return isinstance(value, float | np.floating) and float(value).is_integer()


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _all_numbers(array: np.ndarray[Any, Any]) -> bool:
    return all(_is_number(v) for v in array.flat)


def _first_non_number(array: np.ndarray[Any, Any]) -> tuple[int, ...]:
    for index in np.ndindex(array.shape):
        if not _is_number(array[index]):
            return tuple(int(i) for i in index)
    return tuple(0 for _ in array.shape)


def _where(index: tuple[int, ...], names: Sequence[str] | None) -> str:
    if len(index) == 2:
        column = names[index[1]] if names is not None else str(index[1])
        return f"row {index[0]} column {column!r}"
    return f"the value at {list(index)}"


def _describe(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing (null/NaN)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, bool | np.bool_):
        return f"the boolean {bool(value)}"
    if isinstance(value, list | dict):
        return f"a nested {type(value).__name__}"
    return f"{value!r} ({type(value).__name__})"


def _kind_text(kind: ColumnKind) -> str:
    return {
        ColumnKind.INTEGER: "whole numbers",
        ColumnKind.FLOAT: "numbers",
        ColumnKind.BOOLEAN: "booleans (true/false)",
        ColumnKind.STRING: "strings",
        ColumnKind.BINARY: "bytes (base64 strings)",
        ColumnKind.DATETIME: "ISO 8601 date strings",
        ColumnKind.ANY: "values",
    }[kind]


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join("any" if s == -1 else str(s) for s in shape) + ")"


def _quoted(names: Sequence[str | None]) -> str:
    return ", ".join(repr(n) for n in names)


def _names(specs: Sequence[ColumnSpec]) -> str:
    names = [spec.name for spec in specs]
    if len(names) > 8:
        return f"{_quoted(names[:3])}, ..., {_quoted(names[-2:])}"
    return _quoted(names)
