"""Helpers for tests that run ``flops train-local`` as a real process tree."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flops_contracts.events import Event
from flops_messaging.file_publisher import read_events

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

SLOW_FIT = '''

import time as _time

_Original = ModelManager


class ModelManager(_Original):
    def fit_model(self, config):
        _time.sleep(float(config.extra.get("fit_delay_s", 0)))
        return super().fit_model(config)
'''


def start_train_local(args: list[str], workdir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_HOME": str(workdir / "flwr")}
    return subprocess.Popen(
        [sys.executable, "-m", "flops_manager.cli.main", "train-local", *args,
         "--workdir", str(workdir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=workdir.parent,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, dict[str, Any], str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"train-local did not finish in {timeout}s:\n{out}\n{err}") from None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {}
    return proc.returncode, summary, out + err


def run_train_local(args: list[str], workdir: Path,
                    timeout: float = 300) -> tuple[int, dict[str, Any], str]:
    return finish(start_train_local(args, workdir), timeout)


def wait_for_event(path: Path, predicate: Callable[[Event], bool], timeout: float) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(path):
            if predicate(event):
                return event
        time.sleep(0.1)
    raise AssertionError(f"no matching event in {path} within {timeout}s")


def pids_of_instance(workdir: Path, instance: str) -> list[int]:
    """Processes started for ``instance`` of the run in ``workdir`` (read from /proc)."""
    marker = f"FLOPS_INSTANCE={instance}".encode()
    owner = str(workdir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and any(owner in item for item in environ):
            found.append(int(entry.name))
    return found


def kill_instance(workdir: Path, instance: str) -> None:
    pids = pids_of_instance(workdir, instance)
    assert pids, f"no process for {instance}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def slow_repo(tmp_path: Path) -> Path:
    """digits_sklearn whose fit sleeps ``learner_config.extra.fit_delay_s`` seconds."""
    repo = tmp_path / "slow_repo"
    shutil.copytree(EXAMPLES / "digits_sklearn", repo)
    with (repo / "model_manager.py").open("a") as handle:
        handle.write(SLOW_FIT)
    return repo
