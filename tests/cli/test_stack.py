"""``flops up`` / ``status`` / ``down`` start and stop the real embedded stack."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.repos import output_paths

pytestmark = pytest.mark.integration


def flops(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flops_manager.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def processes_using(directory: Path) -> list[int]:
    marker = str(directory).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline or marker in environ or any(
                str(directory) in path for path in output_paths(entry.name)):
            found.append(int(entry.name))
    return found


def get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_up_status_down(tmp_path):
    directory = tmp_path / "flops-data"
    try:
        up = flops("up", "--data-dir", str(directory), "--json")
        assert up.returncode == 0, up.stderr
        record = json.loads(up.stdout)
        token_file = Path(record["token_file"])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = next(iter(json.loads(token_file.read_text())))
        assert token not in up.stdout  # the secret is never printed
        api = record["api_url"]
        assert get(f"{api}/health") == 200
        assert get(f"{api}/api/v1/projects") == 401
        assert get(f"{api}/api/v1/projects", token) == 200
        assert get(f"{record['mlflow_url']}/health") == 200

        again = flops("up", "--data-dir", str(directory), "--json")
        assert json.loads(again.stdout)["processes"] == record["processes"]  # idempotent

        status = flops("status", "--data-dir", str(directory), "--json")
        assert status.returncode == 0
        # the broker, MLflow, the manager and the default 3 simulated nodes
        assert [p["healthy"] for p in json.loads(status.stdout)["processes"]] == [True] * 6
        assert processes_using(directory)
    finally:
        down = flops("down", "--data-dir", str(directory), "--json")
    assert json.loads(down.stdout) == {
        "stopped": ["node-1", "node-2", "node-3", "manager", "mlflow", "broker"],
        "survivors": []}
    assert processes_using(directory) == []  # nothing left, the embedded database included
    after = flops("status", "--data-dir", str(directory))
    assert after.returncode == 3 and "not running" in after.stdout


def test_down_never_signals_a_recycled_pid(tmp_path):
    """stack.json names a pid that now belongs to another process: `flops down` spares it."""
    from flops_manager.supervisor import start_time

    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        real = start_time(stranger.pid)
        assert real is not None
        record = {"data_dir": str(tmp_path), "processes": [
            {"name": name, "pid": stranger.pid, "port": 1, "health_url": None, "log": "x",
             "start": str(int(real) - 100)} for name in ("broker", "mlflow", "manager")]}
        (tmp_path / "stack.json").write_text(json.dumps(record))
        down = flops("down", "--data-dir", str(tmp_path), "--json")
        assert down.returncode == 0, down.stderr
        assert json.loads(down.stdout) == {"stopped": ["manager", "mlflow", "broker"],
                                           "survivors": []}
        assert stranger.poll() is None and start_time(stranger.pid) == real
        assert not (tmp_path / "stack.json").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_down_stops_services_a_dead_manager_left(tmp_path):
    """The manager dies without stopping its services: `flops down` stops them (SIGTERM, then
    SIGKILL for one that ignores SIGTERM) and checks in /proc that none remains."""
    from flops_manager.supervisor import start_time

    manager = subprocess.Popen(["sleep", "600"], start_new_session=True)
    service = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 600 & wait"],
                               start_new_session=True)
    try:
        record = {"data_dir": str(tmp_path), "processes": [
            {"name": "manager", "pid": manager.pid, "port": 1, "health_url": None, "log": "x",
             "start": start_time(manager.pid)}]}
        (tmp_path / "stack.json").write_text(json.dumps(record))
        pids = tmp_path / "local" / "pids"
        pids.mkdir(parents=True)
        (pids / "p-inference-server-0.json").write_text(json.dumps({
            "pid": service.pid, "start": start_time(service.pid), "manager": manager.pid,
            "manager_start": start_time(manager.pid), "instance": "p-inference-server-0"}))
        down = flops("down", "--data-dir", str(tmp_path), "--json")
        assert down.returncode == 0, down.stderr
        assert json.loads(down.stdout) == {"stopped": ["manager"], "survivors": []}
        assert manager.wait(timeout=30) is not None and service.wait(timeout=30) is not None
        assert not list(pids.glob("*.json"))
    finally:
        for popen in (manager, service):
            popen.kill()
            popen.wait()
