"""`flops preflight` and the Docker backend's start-up check, against real Podman networks."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import docker  # type: ignore[import-untyped]
import pytest

from flops_manager.adapters.container_preflight import (
    LABEL,
    PreflightError,
    check_name_resolution,
)
from flops_manager.adapters.docker_orchestrator import build_docker_orchestrator
from flops_manager.cli.main import main as flops_main

pytestmark = pytest.mark.integration


@pytest.fixture()
def engine(podman_socket: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=podman_socket)
    yield client
    client.close()


def _leftovers(client: docker.DockerClient) -> list[str]:
    containers = client.containers.list(all=True, filters={"label": LABEL})
    networks = client.networks.list(filters={"label": LABEL})
    return [c.name for c in containers] + [n.name for n in networks]


@pytest.fixture()
def networks_without_dns() -> Iterator[list[str]]:
    """Two networks whose DNS is disabled: name resolution deliberately unavailable."""
    names = [f"flops-nodns-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    for name in names:
        subprocess.run(["podman", "network", "create", "--disable-dns", name], check=True,
                       capture_output=True)
    yield names
    subprocess.run(["podman", "network", "rm", "-f", *names], check=False, capture_output=True)


def test_healthy_engine_passes_and_leaves_nothing(engine: docker.DockerClient,
                                                  base_image: str) -> None:
    check_name_resolution(engine, base_image, timeout_s=60)
    assert _leftovers(engine) == []


def test_without_name_resolution_it_fails_naming_the_cause(
        engine: docker.DockerClient, base_image: str, networks_without_dns: list[str]) -> None:
    with pytest.raises(PreflightError) as caught:
        check_name_resolution(engine, base_image, timeout_s=30, networks=networks_without_dns)
    message = caught.value.message
    assert message.startswith("container name resolution is not working")
    assert f"network {networks_without_dns[0]} cannot resolve the name" in message
    assert "aardvark-dns" in message and "scripts/setup_containers.sh" in message
    assert _leftovers(engine) == []  # the probes are gone; the given networks stay
    assert all(engine.networks.list(names=[n]) for n in networks_without_dns)


def test_missing_image_is_named(engine: docker.DockerClient) -> None:
    with pytest.raises(PreflightError) as caught:
        check_name_resolution(engine, "localhost/flops-no-such-image:1", pull=False)
    assert "localhost/flops-no-such-image:1 is not available" in caught.value.message
    assert "build_base_image.sh" in caught.value.message


def test_docker_backend_runs_it_at_start(podman_socket: str, base_image: str) -> None:
    class Settings:
        base_image = "localhost/flops-no-such-image:1"

    orchestrator = build_docker_orchestrator(
        podman_socket.replace("unix://", "docker+unix://"), Settings())
    try:
        with pytest.raises(PreflightError, match="flops-no-such-image:1 is not available"):
            orchestrator.preflight()
    finally:
        orchestrator.close()


def test_cli_reports_ok(podman_socket: str, base_image: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    engine = podman_socket.replace("unix://", "docker+unix://")
    assert flops_main(["preflight", "--engine", engine, "--image", base_image]) == 0
    assert "ok: containers on" in capsys.readouterr().out


def test_cli_without_engine_says_how_to_start_one(tmp_path: object,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    engine = "docker+unix:///nonexistent/flops-preflight.sock"
    assert flops_main(["preflight", "--engine", engine]) == 2
    assert "cannot reach the container engine" in capsys.readouterr().err
