"""Turn a request body into a table or array: the MLflow scoring protocol's input formats.

Pure functions (no I/O): JSON with one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` (plus optional ``params``), CSV with a header row, or Parquet.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from inference_server.errors import RequestError

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
SUPPORTED_CONTENT_TYPES = (CONTENT_TYPE_JSON, CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET)

DF_SPLIT = "dataframe_split"
DF_RECORDS = "dataframe_records"
INSTANCES = "instances"
INPUTS = "inputs"
JSON_FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
PARAMS = "params"

_EXAMPLE = '{"dataframe_split": {"columns": ["x0", "x1"], "data": [[0.0, 0.5]]}}'


@dataclasses.dataclass(frozen=True)
class ParsedRequest:
    """A decoded request: the data (``pandas.DataFrame`` or ``numpy.ndarray``) and params."""

    data: Any
    params: dict[str, Any] | None
    source: str


def media_type(content_type: str | None) -> str:
    """Return the supported media type named by a ``Content-Type`` header.

    Raises
    ------
    RequestError
        415 when the header is missing, names an unsupported type or charset, or carries
        parameters other than ``charset``.
    """
    supported = ", ".join(SUPPORTED_CONTENT_TYPES)
    if not content_type or not content_type.strip():
        raise RequestError(
            f"the request has no Content-Type header; send one of: {supported}", status=415
        )
    mime, *parameters = (part.strip() for part in content_type.split(";"))
    mime = mime.lower()
    if mime not in SUPPORTED_CONTENT_TYPES:
        raise RequestError(
            f"unsupported content type {mime!r}; send one of: {supported}", status=415
        )
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if key == "charset":
            if value not in ("utf-8", "utf8"):
                raise RequestError(
                    f"unsupported charset {value!r}; encode the body as UTF-8", status=415
                )
        elif key:
            raise RequestError(
                f"unsupported content type parameter {key!r}; the input format goes into the "
                f"JSON body instead, e.g. {_EXAMPLE}",
                status=415,
            )
    return mime


def parse_body(body: bytes, content_type: str | None) -> ParsedRequest:
    """Decode a scoring request.

    Parameters
    ----------
    body
        The raw request body.
    content_type
        The ``Content-Type`` header (``application/json``, ``text/csv`` or Parquet).

    Returns
    -------
    ParsedRequest
        A DataFrame (named or positional columns) or an array, with at least one row.

    Raises
    ------
    RequestError
        400 for an empty or malformed body, 415 for an unsupported content type.
    """
    mime = media_type(content_type)
    if not body.strip():
        raise RequestError(
            "the request body is empty; send a JSON object such as "
            f"{_EXAMPLE}, or CSV with a header row"
        )
    if mime == CONTENT_TYPE_CSV:
        return ParsedRequest(parse_csv(body), None, "csv")
    if mime == CONTENT_TYPE_PARQUET:
        return ParsedRequest(parse_parquet(body), None, "parquet")
    return parse_json(body)


def parse_csv(body: bytes) -> Any:
    """Read CSV with a header row into a DataFrame.

    Raises
    ------
    RequestError
        If the body is not UTF-8, not CSV, or has no data rows.
    """
    try:
        frame = pd.read_csv(io.BytesIO(body), encoding="utf-8")
    except UnicodeDecodeError:
        raise RequestError("the CSV body is not valid UTF-8; encode it as UTF-8") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise RequestError(
            f"the body is not valid CSV ({_first_line(exc)}); send a header row and then one "
            "line per row with the same number of fields, as DataFrame.to_csv(index=False) writes"
        ) from None
    if len(frame) == 0:
        raise RequestError("the CSV has a header but no data rows; add at least one row")
    return frame


def parse_parquet(body: bytes) -> Any:
    """Read a Parquet file into a DataFrame.

    Raises
    ------
    RequestError
        If the body is not a Parquet file or holds no rows.
    """
    try:
        frame = pd.read_parquet(io.BytesIO(body))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
        raise RequestError(
            f"the body is not a valid Parquet file ({_first_line(exc)}); "
            "send DataFrame.to_parquet() output"
        ) from None
    if len(frame) == 0:
        raise RequestError("the Parquet file holds no rows; send at least one row")
    return frame


def parse_json(body: bytes) -> ParsedRequest:
    """Decode a JSON scoring request (one input format key plus optional ``params``).

    Raises
    ------
    RequestError
        If the body is not a JSON object with exactly one supported format key, or the data
        under that key is malformed.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the body is not valid UTF-8; encode the JSON as UTF-8") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"send a JSON object such as {_EXAMPLE}"
        ) from None
    if not isinstance(document, dict):
        raise RequestError(
            f"the JSON body must be an object with one of the keys {', '.join(JSON_FORMATS)}; "
            f"got {_json_kind(document)}. Example: {_EXAMPLE}"
        )
    keys = [key for key in document if key in JSON_FORMATS]
    unknown = sorted(key for key in document if key not in JSON_FORMATS and key != PARAMS)
    if len(keys) != 1 or unknown:
        found = ", ".join(repr(k) for k in unknown)
        problem = (
            f"no input format key (found {found or 'none'})" if not keys
            else f"several input format keys ({', '.join(keys)})" if len(keys) > 1
            else f"unknown key(s) {found}"
        )
        raise RequestError(
            f"the JSON body has {problem}; use exactly one of {', '.join(JSON_FORMATS)} "
            f"(and optionally {PARAMS!r}). Example: {_EXAMPLE}"
        )
    params = document.get(PARAMS)
    if params is not None and not isinstance(params, dict):
        raise RequestError(f"{PARAMS!r} must be a JSON object of parameter names to values")
    key = keys[0]
    value = document[key]
    if key == DF_SPLIT:
        data = frame_from_split(value)
    elif key == DF_RECORDS:
        data = frame_from_records(value, what=DF_RECORDS)
    else:
        data = data_from_tensor_input(value, what=key)
    return ParsedRequest(data, params, key)


def frame_from_split(value: Any) -> Any:
    """Build a DataFrame from pandas' ``split`` orient: ``{"columns": [...], "data": [[...]]}``.

    Raises
    ------
    RequestError
        If ``data`` is missing or empty, rows are not lists, or a row's length differs from the
        number of columns.
    """
    if not isinstance(value, dict) or "data" not in value:
        raise RequestError(
            f"{DF_SPLIT!r} must be an object with 'data' (a list of rows) and optionally "
            f"'columns'; e.g. {_EXAMPLE}"
        )
    unknown = sorted(set(value) - {"columns", "data", "index"})
    if unknown:
        raise RequestError(
            f"{DF_SPLIT!r} has unknown key(s) {', '.join(repr(k) for k in unknown)}; "
            "use 'columns', 'data' and optionally 'index'"
        )
    rows = value["data"]
    columns = value.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str | int) for c in columns)
    ):
        raise RequestError(f"{DF_SPLIT}.columns must be a list of column names")
    if not isinstance(rows, list) or not rows:
        raise RequestError(f"{DF_SPLIT}.data must be a non-empty list of rows")
    if all(not isinstance(row, list) for row in rows) and columns is not None and len(columns) == 1:
        rows = [[item] for item in rows]  # a one-column frame may list bare values
    width = len(columns) if columns is not None else _row_length(rows, 0, what=DF_SPLIT)
    for index in range(len(rows)):
        length = _row_length(rows, index, what=DF_SPLIT)
        if length != width:
            named = f"{width} columns are named" if columns is not None else f"row 0 has {width}"
            raise RequestError(
                f"{DF_SPLIT}.data row {index} has {length} values but {named}; "
                "every row needs one value per column"
            )
    if columns is not None and len(set(columns)) != len(columns):
        raise RequestError(f"{DF_SPLIT}.columns names a column twice; names must be unique")
    return pd.DataFrame(rows, columns=columns)


def frame_from_records(value: Any, *, what: str) -> Any:
    """Build a DataFrame from a list of ``{column: value}`` objects (``records`` orient).

    Raises
    ------
    RequestError
        If ``value`` is not a non-empty list of objects with the same keys.
    """
    if not isinstance(value, list) or not value:
        raise RequestError(f"{what!r} must be a non-empty list of objects, one per row")
    first = value[0]
    for index, record in enumerate(value):
        if not isinstance(record, dict):
            raise RequestError(
                f"{what} row {index} is {_json_kind(record)}; every row must be an object "
                'mapping column names to values, e.g. [{"x0": 0.0, "x1": 0.5}]'
            )
        if record.keys() != first.keys():
            missing = sorted(set(first) - set(record))
            extra = sorted(set(record) - set(first))
            detail = (f"lacks {', '.join(map(repr, missing))}" if missing
                      else f"adds {', '.join(map(repr, extra))}")
            raise RequestError(
                f"{what} row {index} {detail} compared with row 0; every row needs the same "
                "columns"
            )
    return pd.DataFrame.from_records(value, columns=list(first))


def data_from_tensor_input(value: Any, *, what: str) -> Any:
    """Decode TF-serving style ``instances`` / ``inputs``.

    A list of objects becomes a DataFrame (records), a list of rows becomes an array, and an
    object of equal-length lists becomes a DataFrame (columns).

    Raises
    ------
    RequestError
        If the value is empty, ragged, or a scalar.
    """
    if isinstance(value, list):
        if not value:
            raise RequestError(f"{what!r} is an empty list; send at least one row")
        if all(isinstance(item, dict) for item in value):
            return frame_from_records(value, what=what)
        if any(isinstance(item, dict) for item in value):
            raise RequestError(f"{what!r} mixes objects and rows; use one kind for all rows")
        try:
            array = np.asarray(value)
        except ValueError:
            raise RequestError(
                f"{what!r} rows have different lengths; every row needs the same number of "
                "values"
            ) from None
        return array
    if isinstance(value, dict):
        if not value:
            raise RequestError(f"{what!r} is an empty object; map column names to lists")
        lengths = {name: len(column) if isinstance(column, list) else None
                   for name, column in value.items()}
        if any(length is None for length in lengths.values()) or len(set(lengths.values())) != 1:
            raise RequestError(
                f"{what!r} as an object must map every column name to a list of values of "
                f"the same length; got lengths {lengths}"
            )
        if next(iter(lengths.values())) == 0:
            raise RequestError(f"{what!r} holds no rows; send at least one value per column")
        return pd.DataFrame(value)
    raise RequestError(
        f"{what!r} must be a list of rows or an object of columns; got {_json_kind(value)}"
    )


def _row_length(rows: Sequence[Any], index: int, *, what: str) -> int:
    row = rows[index]
    if not isinstance(row, list):
        raise RequestError(
            f"{what}.data row {index} is {_json_kind(row)}; each row must be a list of values"
        )
    return len(row)


def _json_kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
