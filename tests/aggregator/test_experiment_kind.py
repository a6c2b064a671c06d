"""The project's MLflow experiment opens in MLflow's UI on its training runs, with metrics."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from aggregator.experiment_kind import mark_model_training
from flops_contracts import tracking_ui
from tests.fixtures.browser import rendered_dom
from tests.fixtures.servers import free_port
from tracking_server.__main__ import mlflow_executable
from tracking_server.settings import SERVER_ENV, TrackingServerSettings, server_argv

UI_BUNDLE = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"


def test_the_tags_are_set(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("flops-x", artifact_location=str(tmp_path / "a"))
    assert mark_model_training(uri, experiment)
    tags = client.get_experiment(experiment).tags
    assert tags[tracking_ui.EXPERIMENT_KIND_TAG] == tracking_ui.MODEL_TRAINING_KIND
    assert "metrics.`accuracy`" in tags[tracking_ui.SHARED_VIEW_TAG_PREFIX
                                        + tracking_ui.RUNS_VIEW_KEY]
    assert not mark_model_training(uri, "999")  # an unknown experiment: a warning, no error


def test_the_names_are_those_of_the_installed_mlflow_ui() -> None:
    bundle = "".join(p.read_text(errors="replace") for p in UI_BUNDLE.glob("*.js"))
    for name in (f'"{tracking_ui.EXPERIMENT_KIND_TAG}"', f'="{tracking_ui.MODEL_TRAINING_KIND}"',
                 f'"{tracking_ui.SHARED_VIEW_TAG_PREFIX}"', '"viewStateShareKey"',
                 'MACHINE_LEARNING="machine_learning"', '"selectedColumns"'):
        assert name in bundle, name


@pytest.fixture
def mlflow_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    settings = TrackingServerSettings(listen_address=f"127.0.0.1:{port}",
                                      data_dir=tmp_path / "mlflow")
    server = subprocess.Popen(server_argv(mlflow_executable(), settings),
                              env={**os.environ, **SERVER_ENV},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, "the MLflow server exited"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.integration
def test_the_runs_link_shows_the_round_metrics(mlflow_url: str, tmp_path: Path) -> None:
    """Headless chromium opens ``links.mlflow_runs``: the runs table with metric columns."""
    client = MlflowClient(tracking_uri=mlflow_url)
    experiment = client.create_experiment("flops-digits")
    assert mark_model_training(mlflow_url, experiment)
    run = client.create_run(experiment, run_name="digits-training").info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run, metrics=[Metric(name, 0.5, now, 1)
                                   for name in ("accuracy", "loss", "learners_answered")])
    client.set_terminated(run)
    dom = rendered_dom(tracking_ui.runs_view_url(mlflow_url, experiment), tmp_path / "p",
                       budget_ms=30000)
    assert "digits-training" in dom  # the runs table, not the GenAI overview
    for column in ("accuracy", "loss", "learners_answered"):
        assert f">{column}<" in dom, column
