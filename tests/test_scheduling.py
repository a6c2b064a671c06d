"""The suite's own scheduling (``tests/conftest.py``): which tests share the container worker,
and a run in which a collected test never ran fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import container_test

ROOT = Path(__file__).resolve().parents[1]

INNER_CONFTEST = '''
import pytest
from tests.conftest import FinishedTests, pytest_configure, pytest_sessionfinish  # noqa: F401


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Run each test's report without finishing the one named ``test_lost`` (as a scheduler
    that never sent it would)."""
    if item.name == "test_lost":
        return True
    return None
'''


def test_container_tests_are_told_by_their_node_id() -> None:
    assert container_test("tests/containers/test_images.py::test_build")
    assert container_test("tests/compose/test_stack.py::test_stack")
    assert container_test("tests/reliability/test_faults.py::test_killed[docker]")
    assert not container_test("tests/reliability/test_faults.py::test_killed[local]")
    assert not container_test("tests/manager/test_api.py::test_containers")


def _inner_run(tmp_path: Path, tests: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(tests)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOPS_REQUIRE_TOOLS": "0"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_run_where_a_collected_test_never_ran_fails(tmp_path: Path) -> None:
    lost = _inner_run(tmp_path, "def test_kept():\n    pass\n\n\ndef test_lost():\n    pass\n")
    assert lost.returncode == 1, lost.stdout[-2000:]
    assert "1 of 2 collected tests never ran" in lost.stdout
    whole = _inner_run(tmp_path, "def test_kept():\n    pass\n\n\ndef test_also():\n    pass\n")
    assert whole.returncode == 0, whole.stdout[-2000:]
    assert "never ran" not in whole.stdout
