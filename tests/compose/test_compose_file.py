"""The management suite's compose file: valid, healthy by construction, no secrets committed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.tools import missing, require_tools

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ONE_SHOT = {"registry-key"}
"""Services that run once at start (and are not restarted)."""
# REGISTRY_AUTH_TOKEN_* configure the registry's token authentication: names, not secrets
SECRET_NAMES = re.compile(r"PASSWORD|(?<!AUTH_)TOKEN|SECRET", re.IGNORECASE)
_BESIDE = Path(sys.executable).with_name("podman-compose")
PODMAN_COMPOSE = str(_BESIDE) if _BESIDE.exists() else shutil.which("podman-compose")
VARIABLE = re.compile(r"^\$\{[A-Z_]+(:?[-?][^}]*)?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_every_service_has_a_healthcheck_and_the_manager_waits_for_them(
    compose: dict[str, Any]
) -> None:
    services = {k: v for k, v in compose["services"].items() if k not in ONE_SHOT}
    assert set(services) == {"mongo", "mqtt", "mlflow", "registry", "manager"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name
    waits = services["manager"]["depends_on"]
    assert {k: v["condition"] for k, v in waits.items()} == {
        "mongo": "service_healthy", "mqtt": "service_healthy", "mlflow": "service_healthy",
        "registry": "service_healthy",
    }


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAMES.search(key):
                assert VARIABLE.match(str(value)), f"{name}.{key} must come from .env: {value}"
        assert "docker.sock" not in str(service.get("volumes")), f"{name} mounts a Docker socket"
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for line in example.splitlines():
        key, _, value = line.partition("=")
        if SECRET_NAMES.search(key) and value:
            assert value == "change-me", f".env.example must not hold a real secret: {key}"
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def test_data_survives_restarts_and_the_oakestra_network_is_configurable(
    compose: dict[str, Any]
) -> None:
    services = compose["services"]
    assert "mongo-data:/data/db" in services["mongo"]["volumes"]
    assert "mqtt-data:/mosquitto/data" in services["mqtt"]["volumes"]
    assert "mlflow-data:/data" in services["mlflow"]["volumes"]
    assert "registry-data:/var/lib/registry" in services["registry"]["volumes"]
    assert set(compose["volumes"]) == {"mongo-data", "mqtt-data", "mlflow-data", "registry-data",
                                       "registry-token"}
    mongo_image = services["mongo"]["image"]
    assert re.search(r"mongo:(\d+)", mongo_image) and int(
        re.search(r"mongo:(\d+)", mongo_image).group(1)) >= 6  # type: ignore[union-attr]
    oakestra = compose["networks"]["oakestra"]
    assert oakestra["external"] is True and oakestra["name"] == "${OAKESTRA_NETWORK:-oakestra}"
    assert "oakestra" in services["manager"]["networks"]


def test_broker_requires_logins_and_the_manager_creates_per_project_ones(
    compose: dict[str, Any]
) -> None:
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert "allow_anonymous false" in conf and "persistence true" in conf
    assert "plugin @DYNSEC_PLUGIN@" in conf
    assert "plugin_opt_config_file /mosquitto/data/dynamic-security.json" in conf
    assert "password_file" not in conf and "acl_file" not in conf
    entrypoint = (ROOT / "deploy" / "mosquitto" / "entrypoint.sh").read_text(encoding="utf-8")
    assert "mosquitto_ctrl dynsec init" in entrypoint
    manager = compose["services"]["manager"]["environment"]
    assert manager["FLOPS_BROKER_ACCOUNTS"] == "mosquitto-dynsec"
    assert manager["FLOPS_MQTT_USERNAME"] == "flops-manager"
    assert not any(k.startswith("FLOPS_COMPONENT_MQTT") for k in manager)
    assert manager["FLOPS_COMPONENT_API_URL"].startswith("http://")


def test_mlflow_requires_logins_and_the_manager_scopes_them_per_owner(
    compose: dict[str, Any]
) -> None:
    mlflow = compose["services"]["mlflow"]["environment"]
    assert mlflow["FLOPS_AUTH"] == "true"
    assert mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    manager = compose["services"]["manager"]["environment"]
    assert manager["FLOPS_TRACKING_ACCESS"] == "mlflow-basic-auth"
    assert manager["FLOPS_TRACKING_ADMIN_PASSWORD"] == "${MLFLOW_ADMIN_PASSWORD}"


def test_podman_compose_accepts_the_file(tmp_path: Path) -> None:
    require_tools(("podman",), "scripts/setup_containers.sh installs it")
    if PODMAN_COMPOSE is None:
        missing("podman-compose", "the dev extra installs it")
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run(
        [str(PODMAN_COMPOSE), "--env-file", str(env), "-f", str(COMPOSE), "config"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert set(rendered["services"]) == {"mongo", "mqtt", "mlflow", "registry", "manager",
                                         *ONE_SHOT}


def test_the_registry_takes_tokens_of_the_manager_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    registry = services["registry"]
    env = registry["environment"]
    assert env["REGISTRY_AUTH"] == "token"
    assert env["REGISTRY_AUTH_TOKEN_REALM"].startswith("${FLOPS_REGISTRY_AUTH_REALM:?")
    assert env["REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE"] == "/registry-token/cert.pem"
    assert "registry-token:/registry-token:ro" in registry["volumes"]
    assert "depends_on" not in registry  # Podman could not restart it after the one-shot
    manager = services["manager"]
    assert manager["environment"]["FLOPS_REGISTRY_KEY_DIR"] == "/registry-token"
    assert "registry-token:/registry-token" in manager["volumes"]
    assert services["registry-key"]["command"][2] == "flops_manager.identity.registry_tokens"
    secure = (ROOT / "deploy" / "registry" / "secure.yml").read_text(encoding="utf-8")
    assert "htpasswd" not in secure.lower()
