"""One scoring request from bytes to bytes: parse, validate, predict, encode.

Pure apart from calling the ``predict`` function it is given, so it runs in a worker thread and
is unit-testable with any callable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from inference_server.errors import RequestError
from inference_server.payload import parse_body
from inference_server.validation import InputSignature, conform

logger = logging.getLogger(__name__)

Predict = Callable[[Any, dict[str, Any] | None], Any]


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """The JSON response body and how many rows were scored."""

    body: bytes
    rows: int


def score(
    *,
    body: bytes,
    content_type: str | None,
    signature: InputSignature | None,
    predict: Predict,
) -> ScoreResult:
    """Score one ``/invocations`` request.

    Parameters
    ----------
    body, content_type
        The request body and its ``Content-Type`` header.
    signature
        The model's input signature (``None``: no checks beyond parsing).
    predict
        Called with the conformed input and the request's ``params``.

    Returns
    -------
    ScoreResult
        ``{"predictions": [...]}`` as UTF-8 JSON.

    Raises
    ------
    RequestError
        For every problem with the request, including a model that rejects the input.
    """
    parsed = parse_body(body, content_type)
    data = conform(parsed.data, signature)
    try:
        raw = predict(data, parsed.params)
    except RequestError:
        raise
    except Exception as exc:
        logger.info("model rejected a %s request: %s", parsed.source, exc, exc_info=True)
        raise RequestError(
            f"the model could not score this input: {_first_line(exc)}. Check the values "
            "against the signature at GET /metadata"
        ) from None
    return ScoreResult(encode_predictions(raw), len(data))


def encode_predictions(raw: Any) -> bytes:
    """Return ``{"predictions": ...}`` as compact UTF-8 JSON (MLflow's response shape).

    DataFrames become a list of records, arrays and Series lists, NaN and infinities ``null``.
    """
    return json.dumps({"predictions": to_jsonable(raw)}, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def to_jsonable(value: Any) -> Any:
    """Convert model output (NumPy, pandas, nested containers) to plain JSON values."""
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(record) for record in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return to_jsonable(value.to_numpy())
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iub":
            return value.tolist()
        return to_jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
