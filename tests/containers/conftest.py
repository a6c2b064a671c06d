"""Real Buildah, Podman and registry fixtures: base image, registry, podman API socket.

Everything these fixtures start is stopped afterwards. Without buildah, podman or
docker-registry the tests skip with the reason (fail in CI, see tests/fixtures/tools.py);
scripts/setup_containers.sh installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from flops_manager.adapters.docker_orchestrator import DockerOrchestrator, build_docker_orchestrator
from flops_manager.identity.registry_access import trusted_images
from image_builder import BuilderSettings
from image_builder.fl_images import build_images
from image_builder.outcome import ImageBuildResult
from image_builder.runtime_layer import copy_runtime
from tests.fixtures.events import Recorder, recorder  # noqa: F401 - shared fixture
from tests.fixtures.podman import (  # noqa: F401 - shared session fixtures
    BASE_IMAGE,
    CA_BUNDLE,
    MAIN,
    base_image,
    podman_socket,
    registry,
    tiny_image,
)
from tests.fixtures.tools import require_tools

from .stack import (  # noqa: F401 - session fixtures shared by the manager-level suites
    broker,
    builder_image,
    engine,
    manager,
    mlflow_port,
    storage_volume,
)

EXAMPLE = MAIN / "examples" / "digits_sklearn"
ARM64_BASE_IMAGE = "localhost/flops-python:3.11-bookworm-arm64"
PLATFORMS = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
"""Platform -> what ``uname -m`` prints in its containers."""
GIT_ID = ["-c", "user.name=FLOps Test", "-c", "user.email=test@flops.invalid"]
NODE_IMAGE = "localhost/flops-test/node:latest"



@pytest.fixture(autouse=True)
def _container_tools(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("integration") is not None:
        require_tools(("buildah", "podman", "docker-registry"),
                      "run scripts/setup_containers.sh")


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


def make_repo(path: Path, extra: Mapping[str, str] | None = None) -> Path:
    """The digits example (plus ``extra`` files) committed to a new git repository."""
    shutil.copytree(EXAMPLE, path, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in (extra or {}).items():
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def trusted_of(*results: ImageBuildResult) -> list[str]:
    """The digest references a manager would record from these builds' completed events."""
    return trusted_images(r.to_event_data() for r in results)


@pytest.fixture(scope="session")
def node_image(base_image: str) -> str:  # noqa: F811 - the imported fixture
    """The node stage of containers/services.Containerfile (the compose suite's layers)."""
    require_tools(("buildah", "podman"), "scripts/setup_containers.sh installs them")
    env = {**os.environ, "FLOPS_BASE_IMAGE": base_image, "FLOPS_PYTHON": sys.executable}
    done = subprocess.run(["bash", str(MAIN / "containers" / "build.sh"), "node", NODE_IMAGE],
                          env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return NODE_IMAGE


@pytest.fixture(scope="session")
def arm64_base_image() -> str:
    """The local arm64 debootstrap image (built once per machine under emulation, ~3.5 min)."""
    subprocess.run(["bash", str(MAIN / "scripts" / "build_base_image.sh"), ARM64_BASE_IMAGE],
                   check=True, timeout=1200, env={**os.environ, "FLOPS_BASE_ARCH": "arm64"})
    return ARM64_BASE_IMAGE


@pytest.fixture(scope="session")
def registry_base_image(base_image: str, arm64_base_image: str,  # noqa: F811 - imported
                        registry: str) -> str:  # noqa: F811 - the imported fixtures
    """Both base images as one manifest list in the registry (builds take either platform)."""
    ref = f"{registry}/flops/python:3.11-bookworm"
    subprocess.run(["bash", str(MAIN / "scripts" / "push_base_manifest.sh"), ref, base_image,
                    arm64_base_image], check=True, capture_output=True, timeout=600,
                   env={**os.environ, "FLOPS_REGISTRY_TLS_VERIFY": "false"})
    return ref


@pytest.fixture(scope="session")
def repos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tests create user repositories (the manager's builder reads them from here)."""
    return tmp_path_factory.mktemp("repos")


@pytest.fixture(scope="session")
def edge_repo_url(repos_root: Path) -> str:
    """The digits example for multi-platform builds: built on the host by the multi-arch test
    and again by the manager's builder for the heterogeneous federation (a registry hit when
    the first ran)."""
    return make_repo(repos_root / "digits-edge").as_uri()



@pytest.fixture(scope="session")
def runtime_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the FLOps runtime sources (the working tree changes under us)."""
    target = tmp_path_factory.mktemp("runtime") / "src"
    copy_runtime(MAIN, target)
    return target


@pytest.fixture(scope="session")
def buildah_shim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A wrapper that records each buildah call's subcommand, then runs the real buildah."""
    root = tmp_path_factory.mktemp("shim")
    calls = root / "calls.txt"
    shim = root / "buildah"
    shim.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec {shutil.which("buildah")} "$@"\n')
    shim.chmod(0o755)
    return shim, calls


@pytest.fixture(scope="session")
def image_settings(tmp_path_factory: pytest.TempPathFactory,
                   base_image: str, registry: str,  # noqa: F811 - the imported fixtures
                   runtime_snapshot: Path,
                   buildah_shim: tuple[Path, Path]) -> Callable[..., BuilderSettings]:
    cache = tmp_path_factory.mktemp("builder-cache")

    def make(**overrides: Any) -> BuilderSettings:
        values: dict[str, Any] = {
            "target": "images", "project_id": "proj-1", "cache_dir": cache,
            "allow_local": True, "registry": registry, "registry_tls_verify": False,
            "base_image": base_image, "runtime_source": runtime_snapshot,
            "buildah": str(buildah_shim[0]), "build_timeout_s": 1500,
            "extra_ca_bundle": CA_BUNDLE if CA_BUNDLE.is_file() else None,
        }
        values.update(overrides)
        return BuilderSettings(**values)

    return make


@pytest.fixture(scope="session")
def multiarch_build(edge_repo_url: str, registry_base_image: str,
                    image_settings: Callable[..., BuilderSettings],
                    tmp_path_factory: pytest.TempPathFactory) -> ImageBuildResult:
    """The edge repository built for both platforms on the host, pushed to the registry.

    The multi-arch tests inspect it and run both variants.
    """
    rec = Recorder(tmp_path_factory.mktemp("multiarch-events") / "events.jsonl")
    try:
        return build_images(image_settings(repository_url=edge_repo_url,
                                           base_image=registry_base_image,
                                           platforms=list(PLATFORMS)), rec.emitter)
    finally:
        rec.emitter.close()


@pytest.fixture()
def orchestrator(podman_socket: str) -> Iterator[DockerOrchestrator]:  # noqa: F811 - imported
    """The Docker backend on the suite's Podman socket (closed after the test)."""
    orch = build_docker_orchestrator(podman_socket.replace("unix://", "docker+unix://"), None)
    assert isinstance(orch, DockerOrchestrator)
    yield orch
    orch.close()
