"""Flower's and MLflow's usage telemetry is off in every FLOps process, by default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from flops_contracts.entrypoint import start_component
from flops_contracts.telemetry import TELEMETRY_OFF, disable_telemetry

ROOT = Path(__file__).resolve().parents[2]
# MLflow turns its telemetry off by itself under pytest and in CI; a device has none of these
CI_MARKERS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL",
              "BUILDKITE", "TF_BUILD", "TRAVIS", "CIRCLECI")
PROBE = ("import os, mlflow; from mlflow.telemetry.client import get_telemetry_client; "
         "print(get_telemetry_client(), '_MLFLOW_TELEMETRY_SESSION_ID' in os.environ)")


def _device_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CI_MARKERS}
    for name in TELEMETRY_OFF:
        env.pop(name, None)
    return env


def test_defaults_are_set_and_a_users_own_choice_is_kept() -> None:
    env = disable_telemetry({"MLFLOW_DISABLE_TELEMETRY": "false", "OTHER": "1"})
    assert env == {"MLFLOW_DISABLE_TELEMETRY": "false", "OTHER": "1",
                   "FLWR_TELEMETRY_ENABLED": "0"}
    assert disable_telemetry({}) == dict(TELEMETRY_OFF)


def test_mlflow_starts_no_telemetry_client_in_a_process_with_the_defaults() -> None:
    """No client, so no thread that fetches a configuration and edits ``os.environ``."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=disable_telemetry(_device_env()), cwd=ROOT, timeout=300,
                          check=True)
    assert done.stdout.split() == ["None", "False"], done.stdout


def test_without_the_defaults_mlflow_would_start_one() -> None:
    """The control: the variable, not this environment, is what keeps the client away."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=_device_env(), cwd=ROOT, timeout=300, check=True)
    assert re.fullmatch(r"<mlflow\.telemetry\.client\.TelemetryClient object at \w+> True\n",
                        done.stdout), done.stdout


def test_every_component_start_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    class Empty(BaseModel):
        pass

    for name in TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FLOPS_ENROLL_TOKEN", raising=False)
    start_component(Empty, prog="flops-test")
    assert {name: os.environ[name] for name in TELEMETRY_OFF} == dict(TELEMETRY_OFF)


def test_the_service_images_set_it_too() -> None:
    """The manager's and tracking server's images (``containers/services.Containerfile``)."""
    text = (ROOT / "containers" / "services.Containerfile").read_text()
    for name, value in TELEMETRY_OFF.items():
        assert f"{name}={value}" in text
