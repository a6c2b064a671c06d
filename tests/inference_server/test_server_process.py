"""The real server process against a real MLflow server and a model registered like FLOps does."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs installed, as in inference_server
import pytest
import requests

from tests.fixtures.servers import wait_for
from tests.inference_server.conftest import (
    InferenceProcess,
    RegisteredDigits,
    start_inference_server,
    wait_for_event,
    wait_started,
)

pytestmark = pytest.mark.integration

COLUMNS = [f"x{i}" for i in range(64)]
JSON = {"Content-Type": "application/json"}


def predict(server: InferenceProcess, payload: Any) -> list[Any]:
    response = requests.post(f"{server.url}/invocations", json=payload, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"predictions"}
    return list(body["predictions"])


def accuracy(predictions: list[Any], labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions) == labels))


def test_started_event_names_endpoint_and_model(inference_server: InferenceProcess,
                                                 registered_digits: RegisteredDigits) -> None:
    started = wait_started(inference_server, timeout=5)
    assert started.data["endpoint"] == inference_server.url
    assert started.data["model_uri"] == registered_digits.model_uri
    assert started.data["model_name"] == registered_digits.name
    assert started.data["model_version"] == registered_digits.version
    assert str(started.component) == "inference_server"


def test_ping_health_version(inference_server: InferenceProcess) -> None:
    import mlflow

    assert requests.get(f"{inference_server.url}/ping", timeout=5).status_code == 200
    assert requests.get(f"{inference_server.url}/health", timeout=5).status_code == 200
    version = requests.get(f"{inference_server.url}/version", timeout=5)
    assert version.status_code == 200 and version.text == mlflow.__version__


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_json_formats_predict_held_out_digits(fmt: str, inference_server: InferenceProcess,
                                              registered_digits: RegisteredDigits) -> None:
    x, y = registered_digits.data.x_test, registered_digits.data.y_test
    frame = pd.DataFrame(x, columns=COLUMNS)
    payload = {
        "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": x.tolist()}},
        "dataframe_records": {"dataframe_records": frame.to_dict(orient="records")},
        "instances": {"instances": x.tolist()},
        "inputs": {"inputs": x.tolist()},
    }[fmt]
    predictions = predict(inference_server, payload)
    assert len(predictions) == len(y)
    assert accuracy(predictions, y) >= 0.85


def test_csv_predicts_held_out_digits(inference_server: InferenceProcess,
                                      registered_digits: RegisteredDigits) -> None:
    x, y = registered_digits.data.x_test, registered_digits.data.y_test
    body = pd.DataFrame(x, columns=COLUMNS).to_csv(index=False)
    response = requests.post(f"{inference_server.url}/invocations", data=body,
                             headers={"Content-Type": "text/csv"}, timeout=30)
    assert response.status_code == 200, response.text
    assert accuracy(response.json()["predictions"], y) >= 0.85


def test_mlflow_scoring_client_works(inference_server: InferenceProcess,
                                     registered_digits: RegisteredDigits) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    port = int(inference_server.url.rsplit(":", 1)[1])
    client = ScoringServerClient("127.0.0.1", port)
    x, y = registered_digits.data.x_test, registered_digits.data.y_test
    result = client.invoke(pd.DataFrame(x, columns=COLUMNS))
    assert accuracy(list(result.get_predictions().iloc[:, 0]), y) >= 0.85


def test_served_predictions_equal_the_logged_model(inference_server: InferenceProcess,
                                                   registered_digits: RegisteredDigits) -> None:
    import mlflow

    mlflow.set_tracking_uri(registered_digits.tracking_uri)
    model = mlflow.pyfunc.load_model(registered_digits.model_uri)
    x = registered_digits.data.x_test[:50]
    assert predict(inference_server, {"inputs": x.tolist()}) == model.predict(x).tolist()


BAD_REQUESTS = [
    ("wrong column count", {"inputs": [[0.1] * 63]}, JSON, 400, "wrong column count"),
    ("wrong column count named", {"dataframe_split": {"columns": COLUMNS[:10],
                                                      "data": [[0.0] * 10]}},
     JSON, 400, "expects 64 columns"),
    ("wrong type", {"dataframe_split": {"columns": COLUMNS,
                                        "data": [["abc"] + [0.0] * 63]}},
     JSON, 400, "wrong type"),
    ("empty body", b"", JSON, 400, "empty"),
    ("non-JSON", b"{not json", JSON, 400, "not valid JSON"),
    ("unknown key", {"dataframe": [[0.0] * 64]}, JSON, 400, "dataframe_split"),
    ("unknown content type", b"<xml/>", {"Content-Type": "application/xml"}, 415,
     "unsupported content type"),
    ("wrong type in CSV", (",".join(COLUMNS) + "\nabc," + ",".join(["0"] * 63)).encode(),
     {"Content-Type": "text/csv"}, 400, "wrong type"),
]


@pytest.mark.parametrize(("name", "body", "headers", "status", "words"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_message_and_the_server_keeps_serving(
    name: str, body: Any, headers: dict[str, str], status: int, words: str,
    inference_server: InferenceProcess, registered_digits: RegisteredDigits,
) -> None:
    data = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    response = requests.post(f"{inference_server.url}/invocations", data=data, json=payload,
                             headers=headers, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()
    assert words in error["message"], error
    assert error["status"] == status and error["error_code"]
    assert inference_server.process.poll() is None
    x = registered_digits.data.x_test[:5]
    assert predict(inference_server, {"inputs": x.tolist()}) is not None


def test_too_large_body_is_413(tmp_path: Path, registered_digits: RegisteredDigits) -> None:
    server = start_inference_server(tmp_path / "small", model_uri=registered_digits.model_uri,
                                    tracking_uri=registered_digits.tracking_uri,
                                    extra={"FLOPS_MAX_REQUEST_BYTES": "2000"})
    try:
        wait_started(server)
        x = registered_digits.data.x_test
        response = requests.post(f"{server.url}/invocations", json={"inputs": x.tolist()},
                                 timeout=30)
        assert response.status_code == 413, response.text
        assert "exceeds the limit of 2000 bytes" in response.json()["message"]
        assert len(predict(server, {"inputs": x[:1].tolist()})) == 1
    finally:
        stop_and_check(server)


def test_metadata_names_the_registered_model(inference_server: InferenceProcess,
                                             registered_digits: RegisteredDigits) -> None:
    meta = requests.get(f"{inference_server.url}/metadata", timeout=5).json()
    assert meta["model_name"] == registered_digits.name
    assert meta["model_version"] == registered_digits.version
    assert meta["model_uri"] == registered_digits.model_uri
    assert meta["run_id"] == registered_digits.run_id
    assert meta["project_id"] == "serving-test"
    assert meta["commit"] == "0123abcd"
    assert meta["selection"]["metric"] == "accuracy"
    assert meta["selection"]["value"] == pytest.approx(registered_digits.accuracy)
    assert meta["selection"]["best_round"] == 3
    assert meta["metrics"]["best_accuracy"] == pytest.approx(registered_digits.accuracy)
    assert meta["signature"]["inputs"][0]["type"] == "tensor"


def test_metrics_count_requests(inference_server: InferenceProcess,
                                registered_digits: RegisteredDigits) -> None:
    def counts() -> dict[str, dict[str, int]]:
        response = requests.get(f"{inference_server.url}/metrics?format=json", timeout=5)
        return dict(response.json()["requests"])

    before = counts().get("/invocations", {})
    x = registered_digits.data.x_test[:3]
    for _ in range(3):
        predict(inference_server, {"inputs": x.tolist()})
    requests.post(f"{inference_server.url}/invocations", data=b"nope", headers=JSON, timeout=5)
    after = counts()["/invocations"]
    assert after.get("200", 0) - before.get("200", 0) == 3
    assert after.get("400", 0) - before.get("400", 0) == 1

    text = requests.get(f"{inference_server.url}/metrics", timeout=5)
    assert text.headers["content-type"].startswith("text/plain")
    assert 'flops_inference_requests_total{endpoint="/invocations",status="200"}' in text.text
    assert "flops_inference_request_duration_seconds_bucket" in text.text
    latency = requests.get(f"{inference_server.url}/metrics?format=json",
                           timeout=5).json()["latency"]["/invocations"]
    assert latency["count"] >= 4 and latency["p99_s"] is not None


def test_sigterm_finishes_in_flight_request_and_exits_zero(
    tmp_path: Path, registered_digits: RegisteredDigits,
) -> None:
    server = start_inference_server(tmp_path / "term", model_uri=registered_digits.model_uri,
                                    tracking_uri=registered_digits.tracking_uri,
                                    extra={"FLOPS_MAX_REQUEST_BYTES": str(200 * 1024 * 1024)})
    try:
        wait_started(server)
        rows = np.tile(registered_digits.data.x_test, (300, 1))  # ~108k rows, ~1-3 s to score
        result: dict[str, Any] = {}

        def big_request() -> None:
            response = requests.post(f"{server.url}/invocations", json={"inputs": rows.tolist()},
                                     timeout=120)
            result["status"] = response.status_code
            result["rows"] = len(response.json().get("predictions", []))

        thread = threading.Thread(target=big_request)
        thread.start()

        def in_flight() -> bool:
            metrics = requests.get(f"{server.url}/metrics?format=json", timeout=5).json()
            return int(metrics["in_flight"]) >= 2  # the big request plus this one

        wait_for(in_flight, timeout=60, interval=0.02, what="the large request to be in flight")
        server.process.send_signal(signal.SIGTERM)
        thread.join(120)
        assert result == {"status": 200, "rows": len(rows)}
        assert server.process.wait(60) == 0, server.log_text()[-3000:]
    finally:
        if server.process.poll() is None:
            server.process.kill()
    completed = wait_for_event(server.events, lambda e: str(e.event) == "completed", timeout=5,
                               what="completed")
    assert completed.data["reason"] == "SIGTERM"
    assert completed.data["rows_scored"] == len(rows)


def test_bad_model_uri_fails_with_event(tmp_path: Path,
                                        registered_digits: RegisteredDigits) -> None:
    uri = "models:/no-such-model/7"
    events = Path("/tmp") / f"flops-inference-{tmp_path.name}.jsonl"
    events.unlink(missing_ok=True)
    server = start_inference_server(tmp_path / "bad", model_uri=uri,
                                    tracking_uri=registered_digits.tracking_uri,
                                    extra={"FLOPS_EVENTS_URI": f"file://{events}"})
    try:
        code = server.process.wait(120)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise AssertionError(
            f"server with a bad model URI kept running\n{server.log_text()}"
        ) from None
    try:
        assert code != 0 and code == 41, server.log_text()
        failed = wait_for_event(events, lambda e: str(e.event) == "failed", timeout=5,
                                what="failed")
        assert uri in failed.data["reason"]
        assert failed.data["stage"] == "model"
        assert failed.data["model_uri"] == uri
    finally:
        events.unlink(missing_ok=True)


def test_missing_model_uri_is_a_config_error(tmp_path: Path) -> None:
    server = start_inference_server(tmp_path / "config", model_uri="", tracking_uri="")
    try:
        code = server.process.wait(60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise AssertionError("server without a model URI kept running") from None
    assert code == 2
    assert "FLOPS_MODEL_URI" in server.log_text()


def stop_and_check(server: InferenceProcess) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            assert server.process.wait(30) == 0, server.log_text()[-3000:]
        except subprocess.TimeoutExpired:
            server.process.kill()
            raise AssertionError("server did not stop within 30 s of SIGTERM") from None
