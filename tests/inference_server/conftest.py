"""Real processes for the inference server tests: a lean MLflow server, a registered digits
model logged the way the aggregator logs it, and ``python -m inference_server``."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from flops_contracts.events import Event
from flops_messaging.file_publisher import read_events
from tests.fixtures.mlflow_target import mlflow_pointed_at
from tests.fixtures.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits_sklearn"
MODEL_NAME = "flops-digits-serving-test"


@dataclasses.dataclass
class Digits:
    x_test: np.ndarray
    y_test: np.ndarray


@dataclasses.dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclasses.dataclass
class RegisteredDigits:
    tracking_uri: str
    name: str
    version: str
    run_id: str
    model_uri: str
    accuracy: float
    data: Digits


@dataclasses.dataclass
class InferenceProcess:
    url: str
    process: subprocess.Popen[bytes]
    events: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def base_env(tmp: Path) -> dict[str, str]:
    (tmp / "tmp").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TMPDIR": str(tmp / "tmp"),
        "MLFLOW_ENV_ROOT": str(tmp / "mlflow-envs"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "FLWR_TELEMETRY_ENABLED": "0",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def stop(process: subprocess.Popen[Any], timeout: float = 20) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


def wait_for_event(path: Path, predicate: Callable[[Event], bool], *, timeout: float,
                   what: str, process: subprocess.Popen[Any] | None = None,
                   log: Path | None = None) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for event in read_events(path):
                if predicate(event):
                    return event
        if process is not None and process.poll() is not None and not path.exists():
            break
        time.sleep(0.1)
    output = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"no {what} event in {path} within {timeout} s\n{output}")


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flops-inference-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(session_dir: Path) -> Iterator[MlflowServer]:
    """A lean ``mlflow server`` (SQLite store, HTTP artifact proxy) on a free port."""
    port = free_port()
    directory = session_dir / "mlflow"
    directory.mkdir()
    log = directory / "server.log"
    env = {**base_env(session_dir), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [exe, "server", "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
             "--artifacts-destination", str(directory / "artifacts"), "--workers", "1",
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=directory,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(lambda: process.poll() is None and requests.get(f"{url}/health",
                                                                      timeout=2).ok,
                     timeout=120, interval=0.5, what=f"mlflow server at {url}/health")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from None
        yield MlflowServer(url=url, process=process, log=log)
    finally:
        stop(process)


def _example_manager() -> Any:
    """Import examples/digits_sklearn/model_manager.py (it imports its sibling ``data``)."""
    had_data = "data" in sys.modules
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("digits_model_manager",
                                                      EXAMPLE / "model_manager.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLE))
        if not had_data:
            sys.modules.pop("data", None)
    return module.ModelManager()


def held_out_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The example's split: 80 % pool for training, 20 % held out (stratified, seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_pool, x_test, y_pool, y_test = train_test_split(x, y, test_size=0.2, random_state=0,
                                                      stratify=y)
    return x_pool, y_pool, x_test, y_test


@pytest.fixture(scope="session")
def registered_digits(mlflow_server: MlflowServer, session_dir: Path) -> RegisteredDigits:
    """Train the digits example model, then log and register it with the aggregator's tracker."""
    from aggregator.tracking import MlflowTracker

    manager = _example_manager()
    x_pool, y_pool, x_test, y_test = held_out_digits()
    rng = np.random.default_rng(0)
    for _ in range(30):
        order = rng.permutation(len(x_pool))
        manager.model.partial_fit(x_pool[order], y_pool[order], classes=np.arange(10))
    accuracy = float(manager.model.score(x_test, y_test))
    tracker = MlflowTracker(tracking_uri=mlflow_server.url, experiment_name="flops-serving-test",
                            run_name="serving-test-training")
    tags = {"flops.project_id": "serving-test", "flops.commit": "0123abcd",
            "flops.repository": "file:///repo", "flops.strategy": "fedavg",
            "flops.rounds": "3", "flops.mode": "classic"}
    # the tracker points MLflow at its server for the whole process (as in an aggregator);
    # this session fixture runs outside any test, so it is undone here, not by tests/conftest.py
    with mlflow_pointed_at(mlflow_server.url):
        run_id = tracker.start(params={"rounds": 3}, tags=tags)
        tracker.log_summary({"best_accuracy": accuracy, "best_round": 3.0})
        model = tracker.log_model(manager, registered_model_name=MODEL_NAME,
                                  tags={**tags, "flops.best_round": "3",
                                        "flops.selection_metric": "accuracy"})
        tracker.finish()
    assert model.registry_uri is not None and model.version is not None
    return RegisteredDigits(tracking_uri=mlflow_server.url, name=MODEL_NAME,
                            version=model.version, run_id=run_id,
                            model_uri=model.registry_uri, accuracy=accuracy,
                            data=Digits(x_test=x_test, y_test=y_test))


def start_inference_server(
    directory: Path, *, model_uri: str, tracking_uri: str, extra: Mapping[str, str] | None = None,
) -> InferenceProcess:
    """Start ``python -m inference_server`` (does not wait)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    events = directory / "events.jsonl"
    log = directory / "server.log"
    env = {
        **base_env(directory),
        "FLOPS_MODEL_URI": model_uri,
        "FLOPS_TRACKING_URI": tracking_uri,
        "FLOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "FLOPS_PROJECT_ID": "serving-test",
        "FLOPS_EVENTS_URI": f"file://{events}",
        **(extra or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "inference_server"], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return InferenceProcess(url=f"http://127.0.0.1:{port}", process=process, events=events,
                            log=log)


def wait_started(server: InferenceProcess, timeout: float = 120) -> Event:
    event = wait_for_event(server.events, lambda e: str(e.event) in ("started", "failed"),
                           timeout=timeout, what="started", process=server.process,
                           log=server.log)
    assert str(event.event) == "started", f"{event.to_dict()}\n{server.log_text()[-4000:]}"
    return event


@pytest.fixture(scope="session")
def inference_server(registered_digits: RegisteredDigits,
                     session_dir: Path) -> Iterator[InferenceProcess]:
    """The server under test, serving ``models:/NAME/VERSION`` from the MLflow server."""
    server = start_inference_server(session_dir / "inference",
                                    model_uri=registered_digits.model_uri,
                                    tracking_uri=registered_digits.tracking_uri)
    try:
        wait_started(server)
        yield server
    finally:
        stop(server.process)
