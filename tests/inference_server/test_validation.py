"""Checking decoded input against a model signature (pure functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs installed, as in inference_server
import pytest

from inference_server.errors import RequestError
from inference_server.validation import (
    ColumnKind,
    ColumnSpec,
    ColumnsSignature,
    TensorSignature,
    conform,
)

DIGITS = TensorSignature(dtype="float64", shape=(-1, 64))
TABLE = ColumnsSignature((
    ColumnSpec("age", ColumnKind.INTEGER, "int64"),
    ColumnSpec("score", ColumnKind.FLOAT, "float64"),
    ColumnSpec("city", ColumnKind.STRING),
    ColumnSpec("vip", ColumnKind.BOOLEAN, "bool", required=False),
))


def reject(data: object, signature: object) -> str:
    with pytest.raises(RequestError) as caught:
        conform(data, signature)  # type: ignore[arg-type]
    assert caught.value.status == 400
    return caught.value.message


def test_no_signature_passes_data_through() -> None:
    frame = pd.DataFrame({"a": [1]})
    assert conform(frame, None) is frame


def test_tensor_from_named_frame_and_from_rows() -> None:
    frame = pd.DataFrame(np.ones((3, 64)), columns=[f"x{i}" for i in range(64)])
    out = conform(frame, DIGITS)
    assert out.shape == (3, 64) and out.dtype == np.float64
    out = conform(np.array([[1] * 64]), DIGITS)
    assert out.dtype == np.float64


def test_tensor_wrong_column_count() -> None:
    message = reject(np.zeros((2, 63)), DIGITS)
    assert "wrong column count" in message and "expects 64" in message and "got 63" in message


def test_tensor_flat_row_gets_a_hint() -> None:
    assert "wrap a single row in a list" in reject(np.zeros(64), DIGITS)


def test_tensor_wrong_type_names_row_and_column() -> None:
    frame = pd.DataFrame([[0.0] * 64, [0.0] * 63 + ["abc"]],
                         columns=[f"x{i}" for i in range(64)])
    message = reject(frame, DIGITS)
    assert "wrong type" in message and "row 1 column 'x63'" in message and "'abc'" in message


def test_tensor_rejects_booleans_and_nulls() -> None:
    assert "boolean" in reject(np.array([[True] * 64]), DIGITS)
    rows = np.array([[None] + [0.0] * 63], dtype=object)
    assert "missing" in reject(rows, DIGITS)


def test_integer_tensor_rejects_fractions() -> None:
    signature = TensorSignature(dtype="int64", shape=(-1, 2))
    assert conform(np.array([[1.0, 2.0]]), signature).dtype == np.int64
    assert "whole numbers" in reject(np.array([[1.5, 2.0]]), signature)


def test_tensor_higher_rank_shape() -> None:
    images = TensorSignature(dtype="float32", shape=(-1, 8, 8))
    assert conform(np.zeros((2, 8, 8)), images).dtype == np.float32
    assert "axis 2 has size 7" in reject(np.zeros((2, 8, 7)), images)


def test_columns_named_are_ordered_and_cast() -> None:
    frame = pd.DataFrame({"city": ["x"], "score": [1], "age": [3.0], "vip": [True]})
    out = conform(frame, TABLE)
    assert list(out.columns) == ["age", "score", "city", "vip"]
    assert out["age"].dtype == np.int64 and out["score"].dtype == np.float64


def test_columns_optional_may_be_missing() -> None:
    out = conform(pd.DataFrame({"age": [1], "score": [2.0], "city": ["x"]}), TABLE)
    assert list(out.columns) == ["age", "score", "city"]


def test_columns_missing_and_unexpected_are_named() -> None:
    message = reject(pd.DataFrame({"age": [1], "score": [2.0], "town": ["x"]}), TABLE)
    assert "missing column(s) 'city'" in message
    assert "unexpected column(s) 'town'" in message


def test_columns_positional_rows_match_by_position() -> None:
    out = conform(np.array([[1, 2.0, "x", True]], dtype=object), TABLE)
    assert out["city"].tolist() == ["x"]
    assert "wrong column count" in reject(np.array([[1, 2.0]], dtype=object), TABLE)


@pytest.mark.parametrize(("column", "value", "words"), [
    ("age", 1.5, "column 'age' row 0 is 1.5"),
    ("age", "7", "the string '7'"),
    ("score", "high", "takes numbers"),
    ("score", True, "the boolean True"),
    ("city", 5, "takes strings"),
    ("vip", "yes", "booleans"),
])
def test_columns_wrong_type(column: str, value: object, words: str) -> None:
    row = {"age": 1, "score": 2.0, "city": "x", "vip": False, column: value}
    message = reject(pd.DataFrame([row]), TABLE)
    assert "wrong type" in message and words in message
