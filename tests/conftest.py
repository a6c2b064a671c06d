"""Session-wide checks: in CI (FLOPS_REQUIRE_TOOLS=1) no test may be skipped for a missing tool.

:mod:`tests.fixtures.tools` already fails such tests; this hook also catches skips raised by
third-party helpers (``importorskip``, plugins) whose reason says that something is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mlflow_target import mlflow_pointing_restored
from tests.fixtures.tools import MISSING, STRICT_VARIABLE, strict

_MISSING_REASON = re.compile(
    rf"{re.escape(MISSING)}|not installed|no module named|could not import|command not found",
    re.IGNORECASE)


CONTAINER_GROUP = "containers"
"""The ``xdist_group`` of every test that builds or runs containers (see below)."""
_CONTAINER_SUITES = ("containers", "compose")
_CONTAINER_FIXTURES = frozenset({"base_image", "registry", "podman_socket", "tiny_image"})
_TESTS = Path(__file__).resolve().parent


def uses_containers(item: pytest.Item) -> bool:
    """Whether a test builds or runs containers (Buildah, Podman, the Docker backend)."""
    path = Path(str(item.path)).resolve()
    if path.is_relative_to(_TESTS) and path.relative_to(_TESTS).parts[0] in _CONTAINER_SUITES:
        return True
    if _CONTAINER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("backend") == "docker"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put every container test in one ``xdist_group``.

    ``scripts/test.sh`` runs two pytest-xdist workers with ``--dist loadgroup``: one takes the
    container suites (their session fixtures build the base, builder and node images and
    start a registry once, and their builds would only fight each other for the 2 cores),
    while the other runs the rest, much of which waits on processes and sockets.
    """
    for item in items:
        if uses_containers(item):
            item.add_marker(pytest.mark.xdist_group(CONTAINER_GROUP))


def _missing_tool_skips(session: pytest.Session) -> list[str]:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return []
    found = []
    for report in reporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        if _MISSING_REASON.search(reason):
            found.append(f"{report.nodeid}: {reason}")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test was skipped because something is not installed."""
    if not strict():
        return
    skipped = _missing_tool_skips(session)
    if skipped:
        print(f"\n{len(skipped)} test(s) skipped for a missing tool while {STRICT_VARIABLE}=1:")
        for line in skipped:
            print(f"  {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _mlflow_pointing_stays_in_its_test() -> Iterator[None]:
    """Undo a test's ``mlflow.set_tracking_uri``/``set_registry_uri`` after it.

    MLflow keeps both URIs process-wide and exports them to every later subprocess, so one test
    pointing MLflow at its own short-lived server made later stacks' components (and model
    look-ups) use that server (two CI failures, both order-dependent). The aggregator's tracker
    and the inference server's loader point MLflow for their whole process (a process of their
    own outside tests); tests that call them in-process are undone here.
    """
    with mlflow_pointing_restored():
        yield
