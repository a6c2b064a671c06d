"""Start, watch and stop a group of local processes (nothing is left running)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Protocol

from flops_manager.supervisor import GroupLeader, stop_groups
from flops_manager.warm_start import WarmStarts


class Child(Protocol):
    """A started process: :class:`subprocess.Popen` or a fork server's child."""

    @property
    def pid(self) -> int:
        """Its process id (it leads its own session)."""

    def poll(self) -> int | None:
        """Its exit code (``-N``: killed by signal N), ``None`` while it runs."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class ManagedProcess:
    """A started process (leading its own process group) and its log file."""

    name: str
    popen: Child
    log_path: Path
    _log: IO[bytes]
    leader: GroupLeader

    @property
    def returncode(self) -> int | None:
        """Exit code, or ``None`` while running."""
        return self.popen.poll()


def component_base_env() -> dict[str, str]:
    """Return our environment without FLOps' own ``FLOPS_*`` settings.

    Components started by the manager must not inherit the manager's configuration (its
    database URL, API tokens, port...): they get exactly what their service spec says.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}


def start_process(
    name: str, argv: list[str], env: Mapping[str, str], *, log_path: Path,
    cwd: Path | None = None, base_env: Mapping[str, str] | None = None, niceness: int = 0,
    warm: WarmStarts | None = None,
) -> ManagedProcess:
    """Start ``argv`` in its own session with ``env`` added to ``base_env`` (default: ours).

    Output goes to ``log_path``. A positive ``niceness`` lowers the process's CPU priority
    (its children inherit it), so that work it does cannot starve this process. With ``warm``,
    a ``python -m`` command is forked from its interpreter's warm server where one serves (at
    the servers' ``niceness``); anything else starts cold.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    environment = os.environ if base_env is None else base_env
    forked = None if warm is None else warm.spawn(argv, env, base_env=environment,
                                                  log_path=log_path, cwd=cwd)
    if forked is not None:
        return ManagedProcess(name, forked, log_path, log, GroupLeader.of(forked.pid))
    try:
        popen = subprocess.Popen(  # noqa: S603 - argv is a list built by FLOps, no shell
            argv, env={**environment, **env}, stdout=log,
            stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
        )
    except OSError:
        log.close()
        raise
    if niceness:
        # right after the start, before the interpreter it runs can fork any child
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, popen.pid, os.getpriority(os.PRIO_PROCESS, 0)
                           + niceness)
    return ManagedProcess(name, popen, log_path, log, GroupLeader.of(popen.pid))


def wait_exited(processes: list[ManagedProcess], timeout_s: float) -> bool:
    """Wait until every process exited; return whether they all did in time."""
    deadline = time.monotonic() + timeout_s
    while any(p.returncode is None for p in processes):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_processes(processes: list[ManagedProcess], *, grace_s: float = 5.0) -> list[int]:
    """SIGTERM the process groups, SIGKILL what is left after ``grace_s``, close the logs.

    Returns the pids that survived even SIGKILL (normally none).
    """
    survivors = stop_groups([p.leader for p in processes], grace_s=grace_s,
                            reap=lambda: [p.returncode for p in processes])
    for process in processes:
        process._log.close()
    return survivors


class ProcessGroup:
    """Processes started together and always stopped together.

    Each process runs in its own session so that stopping it also stops its children.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def start(
        self, name: str, argv: list[str], env: Mapping[str, str], *, cwd: Path | None = None
    ) -> ManagedProcess:
        """Start ``argv`` with ``env`` added to this process's environment; log to a file."""
        process = start_process(name, argv, env, log_path=self.log_dir / f"{name}.log", cwd=cwd)
        self.processes.append(process)
        return process

    def running(self) -> list[ManagedProcess]:
        """Processes that have not exited."""
        return [p for p in self.processes if p.returncode is None]

    def wait_all(self, timeout_s: float) -> bool:
        """Wait until every process exited; return whether they all did in time."""
        return wait_exited(self.processes, timeout_s)

    def stop_all(self, *, grace_s: float = 5.0) -> None:
        """SIGTERM every running process group, then SIGKILL what is left after ``grace_s``."""
        stop_processes(self.processes, grace_s=grace_s)

    def __iter__(self) -> Iterator[ManagedProcess]:
        return iter(self.processes)
