"""Decoding request bodies (pure functions)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs installed, as in inference_server
import pytest

from inference_server.errors import RequestError
from inference_server.payload import media_type, parse_body


def body(document: object) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(("header", "expected"), [
    ("application/json", "application/json"),
    ("application/json; charset=utf-8", "application/json"),
    ("Text/CSV; charset=UTF-8", "text/csv"),
    ("application/vnd.apache.parquet", "application/vnd.apache.parquet"),
])
def test_media_type_accepts_supported_types(header: str, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize(("header", "words"), [
    (None, "no Content-Type"),
    ("", "no Content-Type"),
    ("application/xml", "unsupported content type 'application/xml'"),
    ("application/json; charset=latin-1", "UTF-8"),
    ("application/json; format=pandas-split", "into the JSON body"),
])
def test_media_type_rejects_with_415(header: str | None, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        media_type(header)
    assert caught.value.status == 415
    assert words in caught.value.message


def test_dataframe_split_keeps_columns_and_params() -> None:
    parsed = parse_body(body({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5]]},
                              "params": {"k": 1}}), "application/json")
    assert list(parsed.data.columns) == ["a", "b"]
    assert parsed.data.iloc[0].tolist() == [1.0, 2.5]
    assert parsed.params == {"k": 1}
    assert parsed.source == "dataframe_split"


def test_dataframe_split_without_columns_is_positional() -> None:
    parsed = parse_body(body({"dataframe_split": {"data": [[1, 2], [3, 4]]}}), "application/json")
    assert list(parsed.data.columns) == [0, 1]


def test_dataframe_records() -> None:
    parsed = parse_body(body({"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}),
                        "application/json")
    assert parsed.data.to_dict(orient="list") == {"a": [1, 3], "b": [2, 4]}


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_tensor_inputs_become_arrays(key: str) -> None:
    parsed = parse_body(body({key: [[1, 2], [3, 4]]}), "application/json")
    assert isinstance(parsed.data, np.ndarray)
    assert parsed.data.shape == (2, 2)


def test_inputs_as_columns_become_a_frame() -> None:
    parsed = parse_body(body({"inputs": {"a": [1, 2], "b": [3, 4]}}), "application/json")
    assert isinstance(parsed.data, pd.DataFrame)
    assert list(parsed.data.columns) == ["a", "b"]


def test_instances_as_records_become_a_frame() -> None:
    parsed = parse_body(body({"instances": [{"a": 1}, {"a": 2}]}), "application/json")
    assert parsed.data["a"].tolist() == [1, 2]


def test_csv_with_header() -> None:
    parsed = parse_body(b"a,b\n1,2\n3,4\n", "text/csv")
    assert parsed.data.to_dict(orient="list") == {"a": [1, 3], "b": [2, 4]}


def test_parquet_round_trip() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    parsed = parse_body(frame.to_parquet(), "application/vnd.apache.parquet")
    assert parsed.data["a"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("raw", "content_type", "words"), [
    (b"", "application/json", "body is empty"),
    (b"   \n", "text/csv", "body is empty"),
    (b"{not json", "application/json", "not valid JSON"),
    (b"\xff\xfe", "application/json", "not valid UTF-8"),
    (b"[[1, 2]]", "application/json", "got a list"),
    (b'{"data": [[1]]}', "application/json", "no input format key"),
    (b'{"inputs": [[1]], "instances": [[1]]}', "application/json", "several input format keys"),
    (b'{"inputs": [[1]], "input": 1}', "application/json", "unknown key(s) 'input'"),
    (b'{"inputs": [[1]], "params": [1]}', "application/json", "'params' must be a JSON object"),
    (b'{"inputs": []}', "application/json", "empty list"),
    (b'{"inputs": [[1, 2], [3]]}', "application/json", "different lengths"),
    (b'{"inputs": 5}', "application/json", "got a number"),
    (b'{"inputs": {"a": [1], "b": [1, 2]}}', "application/json", "same length"),
    (b'{"dataframe_split": [[1]]}', "application/json", "must be an object with 'data'"),
    (b'{"dataframe_split": {"data": []}}', "application/json", "non-empty list of rows"),
    (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}', "application/json",
     "row 0 has 1 values but 2 columns are named"),
    (b'{"dataframe_split": {"data": [[1, 2], [1]]}}', "application/json", "row 1 has 1 values"),
    (b'{"dataframe_split": {"data": [5]}}', "application/json", "each row must be a list"),
    (b'{"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}', "application/json",
     "twice"),
    (b'{"dataframe_records": [{"a": 1}, {"b": 2}]}', "application/json", "row 1 lacks 'a'"),
    (b'{"dataframe_records": [[1, 2]]}', "application/json", "row 0 is a list"),
    (b"a,b\n", "text/csv", "no data rows"),
    (b'a,b\n1,2,3,4\n"x', "text/csv", "not valid CSV"),
    (b"not parquet", "application/vnd.apache.parquet", "not a valid Parquet file"),
])
def test_malformed_bodies_are_400_with_a_reason(raw: bytes, content_type: str, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_body(raw, content_type)
    assert caught.value.status == 400
    assert words in caught.value.message
