"""``flops up`` / ``flops down`` / ``flops status``: the embedded management stack.

The stack runs in the background under one data directory (``FLOPS_DATA_DIR``, default
``~/.flops``): an MQTT broker (Debian's ``mosquitto`` when installed), an MLflow tracking server
(SQLite store, artifacts on disk) and the manager with the local orchestrator backend, which
starts its own MongoDB wire-protocol server (nx-27017). ``stack.json`` records what runs;
``api-tokens.json`` holds the API token of the local user (mode 0600).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from flops_contracts.errors import FlopsError
from flops_manager.adapters.local_orchestrator import LOCAL_WORKDIR, LocalOrchestrator
from flops_manager.cli.broker import broker_command, manager_broker_env
from flops_manager.port_book import PortBook
from flops_manager.supervisor import GroupLeader, start_time, stop_groups
from tracking_server.__main__ import mlflow_executable
from tracking_server.settings import SERVER_ENV, TrackingServerSettings, server_argv

STATE_FILE = "stack.json"
TOKENS_FILE = "api-tokens.json"
PORTS_FILE = "ports.json"
"""The ports the stack's servers had last time, reused when free."""
LOCAL_USER = "local"
READY_TIMEOUT_S = 120.0
DEFAULT_NODES = 3
"""Simulated FLOps nodes `flops up` starts (enough for `flops demo` to show several)."""
NODES_DIR = "nodes"
NODE_REPORT_INTERVAL_S = 2.0
SINGLE_CLUSTER = "local"
"""The cluster of every simulated node when the stack has one cluster."""


@dataclasses.dataclass(frozen=True)
class StackProcess:
    """One background process of the stack."""

    name: str
    pid: int
    port: int
    health_url: str | None
    log: str
    start: str | None = None
    """Start time of ``pid`` (see :mod:`flops_manager.supervisor`); unknown: never signalled."""

    @property
    def leader(self) -> GroupLeader:
        """The process group this process leads."""
        return GroupLeader(self.pid, self.start)


@dataclasses.dataclass(frozen=True)
class StopReport:
    """What ``flops down`` stopped, and what (if anything) survived even SIGKILL."""

    stopped: list[str]
    survivors: list[int]


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


def _alive(process: StackProcess) -> bool:
    """Whether the recorded process still runs (same pid and start time, not a zombie)."""
    return process.start is not None and start_time(process.pid) == process.start


def _healthy(process: StackProcess) -> bool:
    if not _alive(process):
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
    return StackProcess(name, popen.pid, port, health_url, str(log),
                        GroupLeader.of(popen.pid).start)


def _wait_ready(process: StackProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(process):
            raise FlopsError(f"{process.name} exited during start-up; see {process.log}")
        if _healthy(process):
            return
        time.sleep(0.2)
    raise FlopsError(f"{process.name} was not ready within {timeout_s:.0f}s; see {process.log}")


STOP_ORDER = ("manager", "mlflow", "broker")
"""The manager first (it stops its projects' services, which still report to the broker)."""
MANAGER_GRACE_S = 30.0


def stop_stack(directory: Path, *, grace_s: float = 10.0) -> StopReport:
    """Stop every process of the stack in :data:`STOP_ORDER` (SIGTERM, then SIGKILL).

    After the manager, services it left behind (recorded by the local backend) are stopped
    too. Only processes whose pid and start time match the records are signalled.
    """
    state = read_state(directory)
    if state is None:
        return StopReport([], [])
    processes = sorted((StackProcess(**p) for p in state["processes"]),
                       key=lambda p: STOP_ORDER.index(p.name) if p.name in STOP_ORDER else -1)
    services = LocalOrchestrator(directory / LOCAL_WORKDIR, grace_s=grace_s)
    started = [leader for leader, _ in services.recorded().values()]  # before the manager
    survivors: list[int] = []
    for process in processes:
        wait = MANAGER_GRACE_S if process.name == "manager" else grace_s
        survivors += stop_groups([process.leader], grace_s=wait)
        if process.name == "manager":
            services.reap_orphans()  # what the manager did not stop (e.g. it was killed)
    survivors += [pid for leader in started for pid in leader.members()]
    (directory / STATE_FILE).unlink(missing_ok=True)
    return StopReport([p.name for p in processes], sorted(set(survivors)))


def node_name(index: int) -> str:
    """The name of simulated node ``index`` (0-based): ``node-1``, ``node-2``..."""
    return f"node-{index + 1}"


def node_cluster(index: int, clusters: int) -> str:
    """The cluster of simulated node ``index`` (0-based) when the stack has ``clusters``.

    One cluster is ``local``; several are ``cluster-1``... with the nodes dealt round-robin, so
    every cluster gets nodes while there are at least as many nodes as clusters.
    """
    if clusters < 1:
        raise ValueError(f"clusters must be 1 or more, not {clusters}")
    return SINGLE_CLUSTER if clusters == 1 else f"cluster-{index % clusters + 1}"


def node_token(api_url: str, token: str, name: str) -> str:
    """A node token of the local user for ``name`` (through the manager's API)."""
    request = urllib.request.Request(  # noqa: S310 - the stack's own http URL
        f"{api_url}/api/v1/nodes/{name}/token", method="POST",
        headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - our own URL
        return str(json.loads(answer.read())["token"])


def node_command(name: str, cluster: str, node_dir: Path, api_url: str,
                 port: int) -> list[str]:
    """The command of a simulated node's agent (its data server listens on ``port``)."""
    return [sys.executable, "-m", "flops_manager.cli.main", "node", "serve", "--name", name,
            "--cluster", cluster, "--data-dir", str(node_dir), "--manager", api_url,
            "--port", str(port), "--report-interval", str(NODE_REPORT_INTERVAL_S)]


def start_stack(directory: Path, *, port: int = 0, nodes: int = DEFAULT_NODES,
                clusters: int = 1) -> dict[str, Any]:
    """Start the stack (if not running) and return its record.

    ``nodes`` simulated FLOps nodes (``node-1``...) run node agents, each with its own data
    directory ``<directory>/nodes/<name>`` that outlives the stack, spread over ``clusters``
    clusters (:func:`node_cluster`; hierarchical projects get one cluster aggregator per cluster
    that holds their data).

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
    token = api_token(directory)  # created once; never printed
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
        ports = PortBook(directory / PORTS_FILE)
        broker_port = ports.port("broker")
        broker_kind, argv = broker_command(directory / "broker", broker_port)
        record["broker"] = broker_kind
        broker = launch("broker", argv, {}, broker_port, None)
        mlflow_port = ports.port("mlflow")
        tracking = TrackingServerSettings(
            listen_address=f"127.0.0.1:{mlflow_port}", data_dir=directory / "mlflow")
        mlflow = launch("mlflow", server_argv(mlflow_executable(), tracking), SERVER_ENV,
                        mlflow_port, f"http://127.0.0.1:{mlflow_port}/health")
        manager_port = ports.port("manager", wanted=port)
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
        api_url = f"http://127.0.0.1:{manager_port}"
        agents = []
        for index in range(nodes):
            name = node_name(index)
            node_dir = directory / NODES_DIR / name
            enrolled = (node_dir / "node.json").exists()
            env = {} if enrolled else {"FLOPS_NODE_TOKEN": node_token(api_url, token, name)}
            node_port = ports.port(name)
            agents.append(launch(
                name, node_command(name, node_cluster(index, clusters), node_dir, api_url,
                                    node_port), env, node_port, None))
        for process in agents:
            _wait_ready(process, READY_TIMEOUT_S)
    except OSError as exc:
        stop_stack(directory)
        raise FlopsError(f"starting the simulated nodes failed: {exc}") from None
    except FlopsError:
        stop_stack(directory)
        raise
    record.update({
        "api_url": f"http://127.0.0.1:{manager_port}",
        "mlflow_url": mlflow_url,
        "mqtt_url": f"mqtt://127.0.0.1:{broker_port}",
        "token_file": str(directory / TOKENS_FILE),
        "nodes": [node_name(i) for i in range(nodes)],
        "clusters": {node_name(i): node_cluster(i, clusters) for i in range(nodes)},
    })
    (directory / STATE_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
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
            parser.add_argument("--nodes", type=int, default=DEFAULT_NODES,
                                help=f"simulated FLOps nodes to run (default {DEFAULT_NODES})")
            parser.add_argument("--clusters", type=int, default=1,
                                help="spread the nodes over this many clusters, cluster-1... "
                                "(default 1: every node in cluster local); hierarchical "
                                "projects get one cluster aggregator per cluster")
        parser.set_defaults(handler=handler)


def _print(args: argparse.Namespace, record: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(record))
    else:
        print("\n".join(lines))


def _nodes_line(record: dict[str, Any]) -> str:
    """``node-1, node-2`` (one cluster) or ``node-1 (cluster-1), node-2 (cluster-2)``."""
    names = record.get("nodes", [])
    clusters = record.get("clusters") or {}
    if len(set(clusters.values())) > 1:
        return ", ".join(f"{name} ({clusters[name]})" for name in names)
    return ", ".join(names) or "none"


def _up(args: argparse.Namespace) -> int:
    directory = data_dir(args.data_dir)
    try:
        if args.nodes < 0:
            raise FlopsError("--nodes must be 0 or more")
        if args.clusters < 1:
            raise FlopsError("--clusters must be 1 or more")
        if args.clusters > max(args.nodes, 1):
            raise FlopsError(f"--clusters {args.clusters} is more than the {args.nodes} nodes: "
                             "every cluster needs a node")
        record = start_stack(directory, port=args.port, nodes=args.nodes,
                             clusters=args.clusters)
    except FlopsError as exc:
        print(f"flops up: {exc.message}", file=sys.stderr)
        return 1
    _print(args, record, [
        f"FLOps is up (data in {directory})",
        f"  API:        {record['api_url']}  (docs: {record['api_url']}/docs)",
        f"  MLflow UI:  {record['mlflow_url']}",
        f"  MQTT:       {record['mqtt_url']}",
        f"  API token:  in {record['token_file']}",
        f"  Nodes:      {_nodes_line(record)}  "
        f"(data in {directory / NODES_DIR}; see `flops node ls`)",
    ])
    return 0


def _down(args: argparse.Namespace) -> int:
    report = stop_stack(data_dir(args.data_dir))
    _print(args, dataclasses.asdict(report),
           [f"stopped {', '.join(report.stopped)}" if report.stopped else "nothing was running"])
    if report.survivors:
        print(f"flops down: processes {report.survivors} survived SIGKILL (uninterruptible?); "
              "check them with `ps -o pid,stat,cmd -p PID`", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    status = stack_status(data_dir(args.data_dir))
    lines = [f"stack {'running' if status['running'] else 'not running'} "
             f"({status['data_dir']})"]
    lines += [f"  {p['name']:8} pid {p['pid']:<7} port {p['port']:<6} "
              f"{'healthy' if p['healthy'] else 'DOWN'}" for p in status["processes"]]
    _print(args, status, lines)
    return 0 if status["running"] else 3
