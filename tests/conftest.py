"""Session-wide checks: in CI (FLOPS_REQUIRE_TOOLS=1) no test may be skipped for a missing tool.

:mod:`tests.fixtures.tools` already fails such tests; this hook also catches skips raised by
third-party helpers (``importorskip``, plugins) whose reason says that something is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.fixtures.mlflow_target import mlflow_pointing_restored
from tests.fixtures.tools import MISSING, STRICT_VARIABLE, strict

_MISSING_REASON = re.compile(
    rf"{re.escape(MISSING)}|not installed|no module named|could not import|command not found",
    re.IGNORECASE)


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
