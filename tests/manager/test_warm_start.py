"""Components forked from a warm interpreter behave as if started cold."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flops_manager.local_processes import ManagedProcess, start_process, stop_processes, wait_exited
from flops_manager.warm_start import ForkedChild, WarmStarts, module_of

SCRIPT = """
import os, sys
print("argv", sys.argv[1:], "env", sorted(k for k in os.environ if k.startswith("T_")))
print("session", os.getsid(0) == os.getpid(), "cwd", os.getcwd())
sys.exit(int(os.environ.get("T_CODE", "0")))
"""


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[WarmStarts]:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "probe.py").write_text(SCRIPT)
    starts = WarmStarts(tmp_path / "servers", preload=("json",))
    yield starts
    starts.close()


def start(warm: WarmStarts, tmp_path: Path, name: str, argv: list[str], env: dict[str, str],
          base: dict[str, str] | None = None) -> ManagedProcess:
    base_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path / "pkg"),
                **(base or {})}
    return start_process(name, argv, env, log_path=tmp_path / f"{name}.log",
                         base_env=base_env, cwd=tmp_path, warm=warm)


def test_module_commands_are_forked_with_exactly_their_environment(
        warm: WarmStarts, tmp_path: Path) -> None:
    process = start(warm, tmp_path, "a", [sys.executable, "-m", "probe", "x", "y"],
                    {"T_MINE": "1", "T_CODE": "3"}, base={"T_BASE": "b"})
    assert isinstance(process.popen, ForkedChild)
    assert wait_exited([process], 60)
    assert process.returncode == 3
    out = (tmp_path / "a.log").read_text()
    assert "argv ['x', 'y'] env ['T_BASE', 'T_CODE', 'T_MINE']" in out
    assert f"session True cwd {tmp_path}" in out
    stop_processes([process], grace_s=1)


def test_a_killed_child_reports_the_signal_and_the_server_forks_on(
        warm: WarmStarts, tmp_path: Path) -> None:
    sleeper = "import time\ntime.sleep(60)\n"
    (tmp_path / "pkg" / "sleeper.py").write_text(sleeper)
    first = start(warm, tmp_path, "s1", [sys.executable, "-m", "sleeper"], {})
    os.kill(first.popen.pid, signal.SIGKILL)
    assert wait_exited([first], 60) and first.returncode == -signal.SIGKILL
    second = start(warm, tmp_path, "s2", [sys.executable, "-m", "sleeper"], {})
    assert isinstance(second.popen, ForkedChild) and second.returncode is None
    assert stop_processes([first, second], grace_s=5) == []
    assert second.returncode == -signal.SIGTERM


def test_other_commands_start_cold(warm: WarmStarts, tmp_path: Path) -> None:
    process = start(warm, tmp_path, "c", [sys.executable, "-c", "print('cold')"], {})
    assert not isinstance(process.popen, ForkedChild)
    assert wait_exited([process], 60) and process.returncode == 0
    stop_processes([process], grace_s=1)


def test_module_of() -> None:
    assert module_of(["/py", "-m", "aggregator"], "/py") == ("aggregator", [])
    assert module_of(["/py", "-m", "m", "--x"], "/py") == ("m", ["--x"])
    assert module_of(["/py", "-c", "x"], "/py") is None
    assert module_of(["/other", "-m", "m"], "/py") is None


def test_a_child_outliving_its_server_runs_until_it_ends(warm: WarmStarts,
                                                         tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    child = start(warm, tmp_path, "s", [sys.executable, "-m", "sleeper"], {})
    server = warm.server(sys.executable, {})
    server.process.kill()
    server.process.wait(10)
    assert child.returncode is None  # the server is gone, the component is not
    assert stop_processes([child], grace_s=5) == []
    assert child.returncode == 1  # ended; its exit code died with the server


def test_other_interpreter_settings_start_cold(warm: WarmStarts, tmp_path: Path) -> None:
    process = start(warm, tmp_path, "p", [sys.executable, "-m", "probe"],
                    {"PYTHONDONTWRITEBYTECODE": "1"})
    assert not isinstance(process.popen, ForkedChild)  # only a new interpreter reads it
    assert wait_exited([process], 60) and process.returncode == 0
    stop_processes([process], grace_s=1)
