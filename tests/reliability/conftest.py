"""Fixtures of the reliability suite and the recorder behind ``docs/reliability.md``.

Each scenario test takes the ``scenario`` fixture, declares its id, title and expected outcome,
and states what it observed. After the run every result (with the test's outcome and duration)
is written as JSON to the pytest cache; with ``FLOPS_RELIABILITY_REPORT=PATH`` the Markdown
report is rendered there by ``scripts/reliability_report.py``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib.util
import json
import os
import time
import urllib.parse
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

from tests.fixtures.podman import (  # noqa: F401 - shared session fixtures
    BUILDER_STORAGE_VOLUME,
    base_image,
    build_builder_image,
    builder_mounts,
    podman_socket,
    push_base_image,
    registry,
)
from tests.fixtures.tools import require_tools
from tests.reliability.harness import ROOT, DockerStack, Stack, slow_digits_repo

RESULTS: dict[str, dict[str, Any]] = {}


@dataclasses.dataclass
class Scenario:
    id: str = ""
    title: str = ""
    expected: str = ""
    observed: list[str] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)

    def declare(self, id: str, title: str, expected: str) -> Scenario:
        self.id, self.title, self.expected = id, title, expected
        return self

    def observe(self, text: str) -> None:
        self.observed.append(text)
        print(f"observed: {text}")  # in the test log too (pytest -s or on failure)


@pytest.fixture()
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    record = Scenario()
    request.node.flops_scenario = record
    yield record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    record: Scenario | None = getattr(item, "flops_scenario", None)
    if record is None or not record.id:
        return
    callspec = getattr(item, "callspec", None)
    backend = str(callspec.params.get("backend", "local")) if callspec is not None else "local"
    entry = RESULTS.setdefault(item.nodeid, {
        "id": record.id, "title": record.title, "expected": record.expected,
        "node": item.nodeid, "backend": backend, "outcome": "passed", "duration_s": 0.0,
        "error": None,
    })
    entry["duration_s"] = round(entry["duration_s"] + report.duration, 1)
    entry["observed"] = list(record.observed)
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else f"error ({report.when})"
        entry["error"] = str(report.longrepr.reprcrash.message if hasattr(  # type: ignore[union-attr]
            report.longrepr, "reprcrash") else report.longrepr)[:400]
    elif report.skipped and report.when in ("setup", "call"):
        entry["outcome"] = "skipped"
        entry["error"] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RESULTS:
        return
    cache = getattr(session.config, "cache", None)
    path = (cache.mkdir("reliability") if cache else Path("/tmp")) / "results.json"
    # two pytest-xdist workers both merge into the file: one at a time, or one's results
    # could be lost
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge_results(path)


def _merge_results(path: Path) -> None:
    previous: dict[str, Any] = {}
    if path.exists():  # keep results of scenarios not run this time
        previous = {r["node"]: r for r in json.loads(path.read_text())["results"]}
    merged = {**previous, **RESULTS}
    payload = {"generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "results": list(merged.values())}
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    target = os.environ.get("FLOPS_RELIABILITY_REPORT")
    if target:
        spec = importlib.util.spec_from_file_location(
            "reliability_report", ROOT / "scripts" / "reliability_report.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.render_file(path, Path(target))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build cache for every stack of the suite (environments are built once)."""
    return tmp_path_factory.mktemp("build-cache")


@pytest.fixture(scope="session")
def slow_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    return slow_digits_repo(tmp_path_factory.mktemp("repos") / "slow-digits").as_uri()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[Stack]:
    """The shared restartable stack; tests that restart a component leave it running."""
    running = Stack(tmp_path_factory.mktemp("stack"), cache_dir).start()
    try:
        yield running
    finally:
        running.stop()


_CONTAINER_TOOLS = ("buildah", "podman", "docker-registry")


@pytest.fixture(scope="session")
def docker_stack(tmp_path_factory: pytest.TempPathFactory, slow_repo: str,
                 request: pytest.FixtureRequest) -> Iterator[DockerStack]:
    """The same stack on the Docker backend (Podman's API): images built once, shared.

    The builder image and the base image in the registry are made here; the first project
    builds the FL images of the slow digits repository, every later one finds them cached.
    """
    require_tools(_CONTAINER_TOOLS, "run scripts/setup_containers.sh")
    base = request.getfixturevalue("base_image")
    address = request.getfixturevalue("registry")
    socket = request.getfixturevalue("podman_socket")
    builder = build_builder_image(base)
    cache = tmp_path_factory.mktemp("docker-build-cache")
    mounts, env = builder_mounts(BUILDER_STORAGE_VOLUME, cache,
                                 Path(urllib.parse.urlparse(slow_repo).path))
    running = DockerStack(tmp_path_factory.mktemp("docker-stack"), cache, socket=socket,
                          registry=address, base_image=push_base_image(base, address),
                          builder_image=builder, mounts=mounts, extra_env=env).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def cleanup_projects(stack: Stack) -> Iterator[list[str]]:
    """Project ids a test created; what is left of them is removed afterwards."""
    created: list[str] = []
    yield created
    for pid in created:
        stack.cleanup(pid)
