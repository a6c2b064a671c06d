"""Trained-model image: inference server + an MLflow model, run with the Docker backend."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from flops_manager.adapters.docker_orchestrator import build_docker_orchestrator
from flops_manager.ports.orchestrator import ServiceSpec
from image_builder import BuilderSettings
from image_builder.model_image import build_model_image
from tests.containers.conftest import trusted_of
from tests.fixtures.events import Recorder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow.sklearn
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    features, labels = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=200).fit(features[:300], labels[:300])
    target = tmp_path_factory.mktemp("model") / "digits"
    mlflow.sklearn.save_model(model, str(target), pip_requirements=[
        "scikit-learn", "numpy", "skops", "mlflow==3.17.2"])
    return target


def test_model_image_builds_caches_and_answers_ping(
        model_dir: Path, image_settings: Callable[..., BuilderSettings], podman_socket: str,
        recorder: Recorder) -> None:
    settings = image_settings(target="model_image", model_uri=str(model_dir))
    first = build_model_image(settings, recorder.emitter)
    ref = first.images["inference_server"]
    assert set(first.images) == {"inference_server"}
    assert ref.rsplit(":", 1)[1].startswith(first.to_event_data()["model_digest"][:12])
    second = build_model_image(settings.model_copy(update={"trusted_images": trusted_of(first)}),
                               recorder.emitter)
    assert second.cache_hit and second.images == first.images
    # the image keeps what the server and the model load: no Flower, no data plane
    report = json.loads(subprocess.run(
        ["podman", "run", "--rm", "--tls-verify=false", "--entrypoint", "cat", ref,
         "/opt/flops/venv/flops-packages.json"], capture_output=True, text=True, check=True,
        timeout=300).stdout)
    removed = {d["name"].lower() for d in report["removed"]}
    kept = {d["name"].lower(): d["why"] for d in report["kept"]}
    assert report["role"] == "inference_server" and {"flwr", "uv"} <= removed, removed
    assert kept["scikit-learn"] == "user requirement" and "mlflow-skinny" in kept

    orch = build_docker_orchestrator(podman_socket.replace("unix://", "docker+unix://"), None)
    spec = ServiceSpec(name="modeltest-inference", role="inference", image=ref,
                       project_id="modeltest", ports=(8080,), listen_env="FLOPS_LISTEN_ADDRESS",
                       public=True, command=("python", "-m", "inference_server"))
    try:
        orch.create_service(spec)
        url = orch.public_url("modeltest-inference")
        assert url is not None
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, orch.service_logs("modeltest-inference")
            time.sleep(0.5)
        answer = requests.post(f"{url}/invocations", json={"inputs": [[0.0] * 64]}, timeout=30)
        assert answer.status_code == 200 and "predictions" in answer.json()
    finally:
        orch.remove_service("modeltest-inference")
        orch.close()
