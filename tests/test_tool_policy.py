"""In CI (FLOPS_REQUIRE_TOOLS=1) a test skipped for a missing tool fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = '''
import pytest
from tests.fixtures.tools import require_tools

def test_needs_a_tool():
    require_tools(["flops-no-such-tool"], "nothing installs it")

def test_third_party_skip():
    pytest.importorskip("flops_no_such_module")

def test_other_skip():
    pytest.skip("arm64 emulation is registered on this host")
'''


def _run(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    sample = tmp_path / "test_sample.py"
    sample.write_text(SAMPLE)
    env = {**os.environ, "FLOPS_REQUIRE_TOOLS": "1" if strict else "0",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.conftest",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(sample)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)


def test_missing_tools_fail_in_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, strict=True)
    assert done.returncode == 1, done.stdout
    assert "missing tool: flops-no-such-tool not installed (nothing installs it)" in done.stdout
    assert "1 failed" in done.stdout
    # the importorskip skip is caught by the session check; an unrelated skip is not
    assert "1 test(s) skipped for a missing tool" in done.stdout
    assert "flops_no_such_module" in done.stdout.split("skipped for a missing tool")[1]


def test_missing_tools_skip_with_reason_outside_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, strict=False)
    assert done.returncode == 0, done.stdout
    assert "3 skipped" in done.stdout
    assert "SKIPPED" in done.stdout and "missing tool: flops-no-such-tool" in done.stdout
