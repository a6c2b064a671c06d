"""Start component processes from warm interpreters (the local backend's fork servers).

A :class:`ForkServer` runs ``python -m flops_contracts.fork_server`` in one interpreter (the
manager's, or a project environment's), which imports the components' heavy modules once and
then forks a child per ``python -m <module>`` request. :class:`WarmStarts` keeps one server per
interpreter (at most ``limit``, the least recently used one stops first). A child looks like a
:class:`subprocess.Popen` to the caller: a ``pid`` (leading its own session) and ``poll()``.
Whatever cannot be forked (no server answers, another command) starts cold, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import select
import socket
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from flops_manager.supervisor import start_time

log = logging.getLogger(__name__)

SERVER_MODULE = "flops_contracts.fork_server"
READY_TIMEOUT_S = 120.0
"""How long a component start waits for a new server's imports before starting cold."""
UNKNOWN_EXIT = 1
"""Exit code of a child that ended after its server (which could not tell it; counted as
failed)."""


class ForkedChild:
    """A process forked by a fork server, with the part of ``Popen``'s interface FLOps uses."""

    def __init__(self, connection: socket.socket, pid: int, rest: bytes = b"") -> None:
        self.connection = connection
        self.pid = pid
        self.returncode: int | None = None
        self._buffer = rest
        self._start = start_time(pid)
        self._orphaned = False
        connection.setblocking(False)

    def poll(self) -> int | None:
        """The exit code once the server reported it (``-N``: killed by signal N), else None.

        If the server ended first, the child runs as long as its pid still names it.
        """
        if self.returncode is not None:
            return self.returncode
        while not self._orphaned and b"\n" not in self._buffer:
            try:
                data = self.connection.recv(64)
            except BlockingIOError:
                return None
            except OSError:
                data = b""
            if not data:
                self._orphaned = True
            self._buffer += data
        if self._orphaned:
            if self._start is not None and start_time(self.pid) == self._start:
                return None
            self._finish(UNKNOWN_EXIT)
            return self.returncode
        line, _, self._buffer = self._buffer.partition(b"\n")
        self._finish(int(line))
        return self.returncode

    def _finish(self, code: int) -> None:
        self.returncode = code
        self.connection.close()


def interpreter_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The ``PYTHON*`` variables of ``env``: read when an interpreter starts, not after a fork."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


def module_of(argv: list[str], python: str) -> tuple[str, list[str]] | None:
    """``(module, args)`` if ``argv`` is ``python -m module args...``, else ``None``."""
    if len(argv) >= 3 and argv[0] == python and argv[1] == "-m":
        return argv[2], argv[3:]
    return None


class ForkServer:
    """One warm interpreter forking ``python -m`` children on request."""

    def __init__(self, python: str, *, log_path: Path, base_env: Mapping[str, str],
                 niceness: int = 0, preload: tuple[str, ...] = ()) -> None:
        """Start the server (its imports run in the background; :meth:`spawn` waits).

        ``preload`` names the modules it imports first (default: the server's own list).
        """
        self.python = python
        self.settings = interpreter_settings(base_env)
        self._directory = tempfile.TemporaryDirectory(prefix="flops-fork-")
        self.socket_path = str(Path(self._directory.name) / "server.sock")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - argv built by FLOps, no shell
                [python, "-m", SERVER_MODULE, self.socket_path, *preload], env=dict(base_env),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                start_new_session=True,
            )
        if niceness:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.setpriority(os.PRIO_PROCESS, self.process.pid,
                               os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        self._lock = threading.Lock()
        self._ready: bool | None = None

    def ready(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Wait (once) until the server has imported its modules; whether it serves."""
        with self._lock:
            if self._ready is None:
                self._ready = self._await_ready(timeout_s)
                if not self._ready:
                    log.warning("fork server of %s not ready; starting components cold",
                                self.python)
            return self._ready and self.process.poll() is None

    def _await_ready(self, timeout_s: float) -> bool:
        stdout = self.process.stdout
        if stdout is None:
            return False
        readable, _, _ = select.select([stdout], [], [], timeout_s)
        return bool(readable) and stdout.readline().strip() == b"ready"

    def spawn(self, module: str, args: list[str], env: Mapping[str, str], *, log_path: Path,
              cwd: Path | None = None) -> ForkedChild | None:
        """Fork ``python -m module args`` with exactly ``env``; ``None`` if the server cannot.

        It cannot when ``env`` asks for other interpreter settings (``PYTHONPATH``...) than the
        server started with, or when the server is not ready.
        """
        if interpreter_settings(env) != self.settings or not self.ready():
            return None
        request = {"module": module, "args": args, "env": dict(env), "log": str(log_path),
                   "cwd": None if cwd is None else str(cwd)}
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.settimeout(READY_TIMEOUT_S)
            connection.connect(self.socket_path)
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer = b""
            while b"\n" not in answer:
                data = connection.recv(64)
                if not data:
                    raise OSError("the fork server closed the connection")
                answer += data
        except OSError as exc:
            connection.close()
            log.warning("fork server of %s failed (%s); starting cold", self.python, exc)
            return None
        line, _, rest = answer.partition(b"\n")
        return ForkedChild(connection, int(line), rest)

    def close(self) -> None:
        """Stop the server (its children keep running; their owner stops them)."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5.0)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._directory.cleanup()


class WarmStarts:
    """One :class:`ForkServer` per interpreter, started on first use, at most ``limit``."""

    def __init__(self, log_dir: Path, *, niceness: int = 0, limit: int = 4,
                 preload: tuple[str, ...] = ()) -> None:
        self.log_dir = log_dir
        self.preload = preload
        self.niceness = niceness
        self.limit = limit
        self._servers: OrderedDict[str, ForkServer] = OrderedDict()
        self._lock = threading.Lock()

    def server(self, python: str, base_env: Mapping[str, str]) -> ForkServer:
        """The server of ``python``, started now if there is none (or it ended)."""
        with self._lock:
            server = self._servers.pop(python, None)
            if server is not None and server.process.poll() is not None:
                server.close()
                server = None
            if server is None:
                digest = hashlib.sha256(python.encode()).hexdigest()[:12]
                server = ForkServer(python, log_path=self.log_dir / f"{digest}.log",
                                    base_env=base_env, niceness=self.niceness,
                                    preload=self.preload)
            self._servers[python] = server
            evicted = []
            while len(self._servers) > self.limit:
                evicted.append(self._servers.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return server

    def spawn(self, argv: list[str], env: Mapping[str, str], *, base_env: Mapping[str, str],
              log_path: Path, cwd: Path | None = None) -> ForkedChild | None:
        """Fork ``argv`` (``python -m module ...``) from its interpreter's server, if it can."""
        found = module_of(argv, argv[0]) if argv else None
        if found is None:
            return None
        module, args = found
        return self.server(argv[0], base_env).spawn(module, args, {**base_env, **env},
                                                    log_path=log_path, cwd=cwd)

    def close(self) -> None:
        """Stop every server."""
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.close()
