"""Metrics, metadata, settings and scoring (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs installed, as in inference_server
import pytest

from flops_contracts.config import load_settings
from flops_contracts.errors import ConfigError
from inference_server.errors import RequestError
from inference_server.metadata import ModelFacts, UriKind, metadata_document, parse_model_uri
from inference_server.metrics import RequestMetrics, quantile, render_json, render_prometheus
from inference_server.scoring import encode_predictions, score
from inference_server.settings import InferenceSettings, endpoint_url, split_host_port
from inference_server.validation import TensorSignature


@pytest.mark.parametrize(("uri", "kind", "fields"), [
    ("models:/digits/3", UriKind.REGISTRY_VERSION, {"name": "digits", "version": "3"}),
    ("models:/digits@champion", UriKind.REGISTRY_ALIAS, {"name": "digits", "alias": "champion"}),
    ("models:/digits/latest", UriKind.REGISTRY_LATEST, {"name": "digits"}),
    ("models:/digits/Production", UriKind.REGISTRY_STAGE, {"stage": "Production"}),
    ("models:/m-0afa93d2", UriKind.LOGGED_MODEL, {"model_id": "m-0afa93d2"}),
    ("runs:/abc123/model", UriKind.RUN, {"run_id": "abc123"}),
    ("/srv/model", UriKind.OTHER, {}),
])
def test_parse_model_uri(uri: str, kind: UriKind, fields: dict[str, str]) -> None:
    ref = parse_model_uri(uri)
    assert ref.kind is kind
    for key, value in fields.items():
        assert getattr(ref, key) == value


def test_metadata_document_reads_flops_tags() -> None:
    facts = ModelFacts(
        model_uri="models:/d/2", loaded_uri="models:/d/2", name="d", version="2", run_id="r",
        version_tags={"flops.project_id": "p1", "flops.commit": "abc",
                      "flops.selection_metric": "accuracy", "flops.best_round": "4"},
        run_tags={"flops.project_id": "ignored", "flops.repository": "file:///r"},
        run_metrics={"best_accuracy": 0.93, "loss": 0.2},
    )
    doc = metadata_document(facts, project_id="p1", instance="i")
    assert doc["project_id"] == "p1" and doc["commit"] == "abc"
    assert doc["repository"] == "file:///r"
    assert doc["selection"] == {"metric": "accuracy", "value": 0.93, "best_round": 4}
    assert doc["server"]["instance"] == "i"
    json.dumps(doc)


def test_metadata_document_unknowns_are_null() -> None:
    doc = metadata_document(ModelFacts(model_uri="/m", loaded_uri="/m",
                                       run_tags={"flops.commit": "unknown"}),
                            project_id="p", instance="i")
    assert doc["model_name"] is None and doc["commit"] is None
    assert doc["selection"] == {"metric": None, "value": None, "best_round": None}


def test_quantile_from_histogram() -> None:
    buckets = (0.1, 0.2, 0.4)
    assert quantile(buckets, (0, 0, 0, 0), 0.5) is None
    assert quantile(buckets, (10, 0, 0, 0), 0.5) == pytest.approx(0.05)
    assert quantile(buckets, (0, 10, 0, 0), 0.5) == pytest.approx(0.15)
    assert quantile(buckets, (50, 0, 49, 1), 0.99) == pytest.approx(0.4)
    assert quantile(buckets, (0, 0, 0, 5), 0.5) == pytest.approx(0.4)


def test_metrics_render_counts_and_latency() -> None:
    metrics = RequestMetrics(buckets=(0.01, 0.1))
    for status, seconds in ((200, 0.005), (200, 0.05), (400, 0.001)):
        metrics.request_started()
        metrics.observe(endpoint="/invocations", status=status, seconds=seconds)
    metrics.add_rows(7)
    snapshot = metrics.snapshot()
    doc = render_json(snapshot)
    assert doc["requests"] == {"/invocations": {"200": 2, "400": 1}}
    assert doc["latency"]["/invocations"]["count"] == 3
    assert doc["rows_scored"] == 7 and doc["in_flight"] == 0
    text = render_prometheus(snapshot, info={"model_name": 'a"b', "model_version": None})
    assert 'flops_inference_model_info{model_name="a\\"b",model_version=""} 1' in text
    assert 'flops_inference_requests_total{endpoint="/invocations",status="200"} 2' in text
    assert ('flops_inference_request_duration_seconds_bucket{endpoint="/invocations",le="0.1"} 3'
            in text)
    assert 'le="+Inf"} 3' in text
    assert "flops_inference_rows_scored_total 7" in text


def test_settings_from_environment() -> None:
    settings = load_settings(InferenceSettings, environ={
        "FLOPS_MODEL_URI": " models:/d/1 ", "FLOPS_LISTEN_ADDRESS": "[::1]:9000",
        "FLOPS_INFERENCE_THREADS": "4",
    })
    assert settings.model_uri == "models:/d/1"
    assert (settings.host, settings.port) == ("::1", 9000)
    assert settings.inference_threads == 4
    assert settings.max_request_bytes == 16 * 1024 * 1024
    assert settings.instance == "inference-server" and settings.project_id == "local"


@pytest.mark.parametrize(("env", "words"), [
    ({}, "FLOPS_MODEL_URI"),
    ({"FLOPS_MODEL_URI": "  "}, "model URI is empty"),
    ({"FLOPS_MODEL_URI": "m", "FLOPS_LISTEN_ADDRESS": "8080"}, "host:port"),
    ({"FLOPS_MODEL_URI": "m", "FLOPS_LISTEN_ADDRESS": "h:99999"}, "0 to 65535"),
    ({"FLOPS_MODEL_URI": "m", "FLOPS_MAX_REQUEST_BYTES": "0"}, "FLOPS_MAX_REQUEST_BYTES"),
    ({"FLOPS_MODEL_URI": "m", "FLOPS_PROJECT_ID": "a/b"}, "project id"),
    ({"FLOPS_MODEL_URI": "m", "FLOPS_NOPE": "1", "FLOPS_MODEL": "x"}, None),
])
def test_settings_errors_name_the_variable(env: dict[str, str], words: str | None) -> None:
    if words is None:  # unrelated FLOPS_ variables are not fields and are ignored
        load_settings(InferenceSettings, environ=env)
        return
    with pytest.raises(ConfigError) as caught:
        load_settings(InferenceSettings, environ=env)
    assert words in caught.value.message


def test_split_host_port_and_url() -> None:
    assert split_host_port("0.0.0.0:80") == ("0.0.0.0", 80)
    assert endpoint_url("::1", 80) == "http://[::1]:80"
    with pytest.raises(ValueError, match="brackets"):
        split_host_port("::1:80")


def test_encode_predictions_handles_numpy_and_pandas() -> None:
    assert json.loads(encode_predictions(np.array([1, 2]))) == {"predictions": [1, 2]}
    assert json.loads(encode_predictions(np.array([0.5, np.nan]))) == {
        "predictions": [0.5, None]}
    frame = pd.DataFrame({"a": [1], "b": ["x"]})
    assert json.loads(encode_predictions(frame)) == {"predictions": [{"a": 1, "b": "x"}]}
    assert json.loads(encode_predictions(pd.Series([np.int64(3)]))) == {"predictions": [3]}
    assert json.loads(encode_predictions({"k": np.float32(1.5)})) == {"predictions": {"k": 1.5}}


def test_score_runs_parse_validate_predict() -> None:
    seen: dict[str, Any] = {}

    def predict(data: Any, params: dict[str, Any] | None) -> Any:
        seen["data"], seen["params"] = data, params
        return data.sum(axis=1)

    result = score(body=b'{"inputs": [[1, 2], [3, 4]], "params": {"p": 1}}',
                   content_type="application/json",
                   signature=TensorSignature("float64", (-1, 2)), predict=predict)
    assert json.loads(result.body) == {"predictions": [3.0, 7.0]}
    assert result.rows == 2 and seen["params"] == {"p": 1}
    assert seen["data"].dtype == np.float64


def test_score_turns_model_errors_into_400() -> None:
    def predict(data: Any, params: dict[str, Any] | None) -> Any:
        raise ValueError("Input X contains NaN.\nmore detail")

    with pytest.raises(RequestError) as caught:
        score(body=b'{"inputs": [[1]]}', content_type="application/json", signature=None,
              predict=predict)
    assert caught.value.status == 400
    assert "could not score this input: Input X contains NaN." in caught.value.message
