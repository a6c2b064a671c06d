"""Session-wide checks: in CI (FLOPS_REQUIRE_TOOLS=1) no test may be skipped for a missing tool.

:mod:`tests.fixtures.tools` already fails such tests; this hook also catches skips raised by
third-party helpers (``importorskip``, plugins) whose reason says that something is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.mlflow_target import mlflow_pointing_restored
from tests.fixtures.tools import MISSING, STRICT_VARIABLE, strict

_MISSING_REASON = re.compile(
    rf"{re.escape(MISSING)}|not installed|no module named|could not import|command not found",
    re.IGNORECASE)


CONTAINER_GROUP = "containers"
"""The scheduling unit of every test that builds or runs containers (see below)."""
_CONTAINER_SUITES = ("tests/containers/", "tests/compose/")
_CONTAINER_FIXTURES = frozenset({"base_image", "registry", "podman_socket", "tiny_image"})


def container_test(nodeid: str) -> bool:
    """Whether a test, by node id, builds or runs containers (Buildah, Podman, Docker backend).

    The container suites, and the Docker-backend runs of parametrized scenarios
    (``...[docker]``).
    """
    return nodeid.startswith(_CONTAINER_SUITES) or "[docker" in nodeid


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that uses the Podman fixtures outside the container suites.

    Such a test would be scheduled away from the container worker (see
    :func:`pytest_xdist_make_scheduler`) and build the images a second time, concurrently.
    """
    strays = [item.nodeid for item in items if not container_test(item.nodeid)
              and _CONTAINER_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if strays:
        raise pytest.UsageError("tests using the Podman fixtures belong under "
                                f"{' or '.join(_CONTAINER_SUITES)}: {', '.join(strays)}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Schedule every container test on one pytest-xdist worker, the rest on any.

    ``scripts/test.sh`` runs two workers: one takes the container tests as one unit (their
    session fixtures build the base, builder and node images and start a registry once, and
    their builds would only fight each other for the 2 cores), while the other runs the rest,
    much of which waits on processes and sockets. (``--dist loadgroup`` would do this with
    ``xdist_group`` marks, but pytest-xdist 3.8 cannot rename node ids on pytest 9.2.)

    Schemathesis gives all its generated tests one node id, which pytest-xdist's scope
    scheduling keys its work by: it would send only the first of them, so a work unit is
    sent as every collected index with a node id in it (:func:`pytest_sessionfinish` fails
    a run in which fewer tests finished than were collected).
    """
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class ContainerGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return CONTAINER_GROUP if container_test(nodeid) else nodeid

        def _assign_work_unit(self, node: Any) -> None:
            scope, work_unit = self.workqueue.popitem(last=False)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            pending = {nodeid for nodeid, completed in work_unit.items() if not completed}
            node.send_runtest_some([index for index, nodeid in
                                    enumerate(self.registered_collections[node])
                                    if nodeid in pending])

    return ContainerGroupScheduling(config, log)


class FinishedTests:
    """Counts the tests that finished (pytest-xdist replays its workers' in the controller)."""

    def __init__(self) -> None:
        self.count = 0

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]
                                 ) -> None:
        self.count += 1


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(FinishedTests(), "flops-finished-tests")


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


def _unfinished_tests(session: pytest.Session) -> int:
    finished = session.config.pluginmanager.get_plugin("flops-finished-tests")
    if finished is None or hasattr(session.config, "workerinput"):  # in a worker: its share
        return 0
    return max(0, session.testscollected - int(finished.count))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run in which a collected test never ran, or one was skipped because something
    is not installed (in CI)."""
    unfinished = _unfinished_tests(session)
    if exitstatus == pytest.ExitCode.OK and unfinished:
        print(f"\n{unfinished} of {session.testscollected} collected tests never ran")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
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
