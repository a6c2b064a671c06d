"""A warm interpreter that forks component processes (``python -m flops_contracts.fork_server``).

Starting a component costs seconds of imports (flwr, mlflow, pyarrow, sklearn) before it can
say it is ready; on a loaded machine, a project's four to six processes importing the same
modules at once took most of the deploying phase. This server imports them once, then forks a
child per request that runs ``python -m <module>`` as a fresh process would: its own session,
its own environment, output to its log file, the usual interpreter exit (``atexit`` runs).

Protocol, over the Unix socket named by the first argument (one connection per child): the
client sends one JSON line ``{"module", "args", "env", "log", "cwd"}``; the server answers the
child's pid (a line, once the child leads its own session) and later its exit code (a line,
``-N`` for signal N, as :mod:`subprocess` reports it). The server prints ``ready`` on stdout
once the modules named by the remaining arguments are imported (missing ones are skipped) and
stops when its stdin closes (its owner is gone); children outlive it.

Only the standard library is used before the requested preloads, and the server runs no thread,
so a fork copies no lock held by another thread.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
from typing import Any

from flops_contracts.telemetry import disable_telemetry

PRELOAD = (
    "numpy", "pandas", "pyarrow", "pyarrow.flight", "sklearn", "sklearn.datasets",
    "sklearn.linear_model", "pydantic", "paho.mqtt.client", "grpc", "flwr", "flwr.client",
    "flwr.server", "mlflow", "mlflow.sklearn", "flops_contracts.entrypoint",
    "flops_messaging", "learner_base.runtime", "learner_base.data", "aggregator.runtime",
    "flops_dataplane.server", "flops_dataplane.mock_provider",
)
"""Modules worth importing before forking components (those that are installed)."""
REQUEST_TIMEOUT_S = 10.0
"""How long the server waits for a connected client's request line."""


def preload(modules: list[str]) -> list[str]:
    """Import ``modules`` (skipping those that cannot be imported); return the imported ones."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - not installed or broken here: fork without it
            continue
        loaded.append(name)
    return loaded


def _reseed() -> None:
    """Give the child its own random streams (the forked copies share the server's state)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _become_child(request: dict[str, Any], ready: int) -> None:
    """In the forked child: own session, environment, output and arguments; then run."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.write(ready, b"x")
    os.close(ready)
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
    if request.get("cwd"):
        os.chdir(str(request["cwd"]))
    _reseed()
    module = str(request["module"])
    sys.argv = [module, *[str(a) for a in request.get("args", [])]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class _Server:
    """The accept/fork/reap loop (single-threaded)."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}

    def _close_inherited(self) -> None:
        """In a child: drop the server's sockets and pipes."""
        self.selector.close()
        self.listener.close()
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)
        for connection in self.children.values():
            connection.close()

    def _fork(self, connection: socket.socket) -> None:
        connection.settimeout(REQUEST_TIMEOUT_S)  # a silent client cannot stall the server
        try:
            with connection.makefile("rb") as reader:
                request = json.loads(reader.readline())
        except (OSError, ValueError):
            connection.close()
            return
        connection.settimeout(None)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self._close_inherited()
            connection.close()
            _become_child(request, ready_w)  # the usual exit follows (SystemExit propagates)
            raise SystemExit(0)
        os.close(ready_w)
        os.read(ready_r, 1)  # the child leads its session: its group can be signalled
        os.close(ready_r)
        self.children[pid] = connection
        with contextlib.suppress(OSError):
            connection.sendall(f"{pid}\n".encode())

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.wakeup_r, 4096)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                connection.close()

    def serve(self) -> None:
        """Fork a child per connection until stdin closes."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wakeup_w)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, "reap")
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "owner")
        print("ready", flush=True)
        while True:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    connection, _ = self.listener.accept()
                    self._fork(connection)
                elif key.data == "reap":
                    self._reap()
                elif not os.read(sys.stdin.fileno(), 4096):
                    return


def main(argv: list[str]) -> None:
    """``fork_server SOCKET [MODULE ...]``: preload the modules, then serve."""
    disable_telemetry(os.environ)
    preload(argv[1:] or list(PRELOAD))
    _Server(argv[0]).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
