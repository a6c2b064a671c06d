"""``flops up`` / ``flops down`` / ``flops status``: the embedded management stack.

The stack runs in the background under one data directory (``FLOPS_DATA_DIR``, default
``~/.flops``): an MQTT broker (Debian's ``mosquitto`` when installed), an MLflow tracking server
(SQLite store, artifacts on disk) and the manager with the local orchestrator backend, which
starts its own MongoDB wire-protocol server (nx-27017). ``stack.json`` records what runs;
``api-tokens.json`` holds the API token of the local user (mode 0600).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from flops_contracts.errors import FlopsError
from flops_manager.cli.broker import broker_command, manager_broker_env
from flops_manager.local_processes import free_port
from tracking_server.__main__ import mlflow_executable
from tracking_server.settings import SERVER_ENV, TrackingServerSettings, server_argv

STATE_FILE = "stack.json"
TOKENS_FILE = "api-tokens.json"
LOCAL_USER = "local"
READY_TIMEOUT_S = 120.0


@dataclasses.dataclass(frozen=True)
class StackProcess:
    """One background process of the stack."""

    name: str
    pid: int
    port: int
    health_url: str | None
    log: str


def data_dir(explicit: Path | None = None) -> Path:
    """The stack's data directory."""
    return (explicit or Path(os.environ.get("FLOPS_DATA_DIR", Path.home() / ".flops"))).resolve()


def api_token(directory: Path) -> str:
    """Return the local user's API token, creating it (0600) on first use."""
    path = directory / TOKENS_FILE
    if path.exists():
        tokens: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return next(t for t, user in tokens.items() if user == LOCAL_USER)
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({token: LOCAL_USER}, handle)
    return token


def read_state(directory: Path) -> dict[str, Any] | None:
    """The running stack's record, or ``None``."""
    path = directory / STATE_FILE
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _healthy(process: StackProcess) -> bool:
    if not _alive(process.pid):
        return False
    if process.health_url is None:
        try:
            socket.create_connection(("127.0.0.1", process.port), timeout=0.5).close()
            return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(process.health_url, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def _spawn(name: str, argv: list[str], env: dict[str, str], directory: Path, port: int,
           health_url: str | None) -> StackProcess:
    log = directory / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        popen = subprocess.Popen(  # noqa: S603 - argv is built here, no shell
            argv, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return StackProcess(name, popen.pid, port, health_url, str(log))


def _wait_ready(process: StackProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(process.pid):
            raise FlopsError(f"{process.name} exited during start-up; see {process.log}")
        if _healthy(process):
            return
        time.sleep(0.2)
    raise FlopsError(f"{process.name} was not ready within {timeout_s:.0f}s; see {process.log}")


def stop_stack(directory: Path, *, grace_s: float = 10.0) -> list[str]:
    """Stop every process of the stack (SIGTERM, then SIGKILL); return their names."""
    state = read_state(directory)
    if state is None:
        return []
    processes = [StackProcess(**p) for p in state["processes"]]
    for process in reversed(processes):  # manager first, broker last
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_alive(p.pid) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return [p.name for p in processes]


def start_stack(directory: Path, *, port: int = 0) -> dict[str, Any]:
    """Start the stack (if not running) and return its record.

    Raises
    ------
    FlopsError
        If a component does not become ready, naming its log; what started is stopped again.
    """
    state = read_state(directory)
    if state is not None and all(_healthy(StackProcess(**p)) for p in state["processes"]):
        return state
    stop_stack(directory)
    directory.mkdir(parents=True, exist_ok=True)
    token = api_token(directory)
    started: list[StackProcess] = []
    record: dict[str, Any] = {"data_dir": str(directory), "processes": []}

    def launch(name: str, argv: list[str], env: dict[str, str], port: int,
               health: str | None) -> StackProcess:
        process = _spawn(name, argv, env, directory, port, health)
        started.append(process)
        record["processes"] = [dataclasses.asdict(p) for p in started]
        (directory / STATE_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        return process

    try:
        broker_port = free_port()
        broker_kind, argv = broker_command(directory / "broker", broker_port)
        record["broker"] = broker_kind
        broker = launch("broker", argv, {}, broker_port, None)
        mlflow_port = free_port()
        tracking = TrackingServerSettings(
            listen_address=f"127.0.0.1:{mlflow_port}", data_dir=directory / "mlflow")
        mlflow = launch("mlflow", server_argv(mlflow_executable(), tracking), SERVER_ENV,
                        mlflow_port, f"http://127.0.0.1:{mlflow_port}/health")
        manager_port = port or free_port()
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        manager = launch("manager", [sys.executable, "-m", "flops_manager"], {
            "FLOPS_HOST": "127.0.0.1",
            "FLOPS_PORT": str(manager_port),
            "FLOPS_DATA_DIR": str(directory),
            "FLOPS_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
            "FLOPS_ORCHESTRATOR_URI": "local://",
            "FLOPS_API_TOKENS": str(directory / TOKENS_FILE),
            "FLOPS_MLFLOW_PUBLIC_URL": mlflow_url,
            "FLOPS_TRACKING_URI": mlflow_url,
            **manager_broker_env(directory / "broker"),
        }, manager_port, f"http://127.0.0.1:{manager_port}/health")
        for process in (broker, mlflow, manager):
            _wait_ready(process, READY_TIMEOUT_S)
    except FlopsError:
        stop_stack(directory)
        raise
    record.update({
        "api_url": f"http://127.0.0.1:{manager_port}",
        "mlflow_url": mlflow_url,
        "mqtt_url": f"mqtt://127.0.0.1:{broker_port}",
        "token_file": str(directory / TOKENS_FILE),
    })
    (directory / STATE_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    assert token  # created above; never printed
    return record


def stack_status(directory: Path) -> dict[str, Any]:
    """Health of each recorded process (``running`` is false when no stack is recorded)."""
    state = read_state(directory)
    if state is None:
        return {"running": False, "data_dir": str(directory), "processes": []}
    processes = [StackProcess(**p) for p in state["processes"]]
    health = [{"name": p.name, "pid": p.pid, "port": p.port, "healthy": _healthy(p),
               "log": p.log} for p in processes]
    return {**state, "running": all(h["healthy"] for h in health), "processes": health}


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``up``, ``down`` and ``status``."""
    for name, handler, text in (
        ("up", _up, "start the embedded stack in the background"),
        ("down", _down, "stop the embedded stack"),
        ("status", _status, "show the embedded stack's health"),
    ):
        parser = sub.add_parser(name, help=text, description=text)
        parser.add_argument("--data-dir", dest="data_dir", type=Path,
                            help="state directory (default FLOPS_DATA_DIR or ~/.flops)")
        parser.add_argument("--json", action="store_true", help="print JSON")
        if name == "up":
            parser.add_argument("--port", type=int, default=0, help="manager port (0 = any)")
        parser.set_defaults(handler=handler)


def _print(args: argparse.Namespace, record: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(record))
    else:
        print("\n".join(lines))


def _up(args: argparse.Namespace) -> int:
    directory = data_dir(args.data_dir)
    try:
        record = start_stack(directory, port=args.port)
    except FlopsError as exc:
        print(f"flops up: {exc.message}", file=sys.stderr)
        return 1
    _print(args, record, [
        f"FLOps is up (data in {directory})",
        f"  API:        {record['api_url']}  (docs: {record['api_url']}/docs)",
        f"  MLflow UI:  {record['mlflow_url']}",
        f"  MQTT:       {record['mqtt_url']}",
        f"  API token:  in {record['token_file']}",
    ])
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = stop_stack(data_dir(args.data_dir))
    _print(args, {"stopped": stopped},
           [f"stopped {', '.join(stopped)}" if stopped else "nothing was running"])
    return 0


def _status(args: argparse.Namespace) -> int:
    status = stack_status(data_dir(args.data_dir))
    lines = [f"stack {'running' if status['running'] else 'not running'} "
             f"({status['data_dir']})"]
    lines += [f"  {p['name']:8} pid {p['pid']:<7} port {p['port']:<6} "
              f"{'healthy' if p['healthy'] else 'DOWN'}" for p in status["processes"]]
    _print(args, status, lines)
    return 0 if status["running"] else 3
