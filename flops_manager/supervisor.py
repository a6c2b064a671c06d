"""Stop process groups that FLOps started, and only those (Linux ``/proc``).

Every background process FLOps starts leads its own session and process group. A record of
it (``stack.json``, the local backend's ``pids/``) keeps its pid *and* its start time, because
a pid outlives nothing: once the process exited, the kernel may give the number to an unrelated
process. :class:`GroupLeader` signals a group only when the pid still belongs to the recorded
process, or when the leader exited but members of its group remain (Linux does not reuse a pid
while it still names a process group, so those members are ours).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int | str) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first), or ``None``."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), or ``None`` if it is not running."""
    fields = _stat_fields(pid)
    return None if fields is None or fields[0] in ("Z", "X") else fields[19]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
                members.append(int(entry.name))
    return members


@dataclasses.dataclass(frozen=True)
class GroupLeader:
    """A process that leads its own process group, identified by pid and start time."""

    pid: int
    start: str | None

    @classmethod
    def of(cls, pid: int) -> GroupLeader:
        """Identify our child ``pid`` right after starting it.

        Until it is reaped, a child that already exited is a zombie that still has its start
        time, so a leader that exits at once is identified too (and its group stopped).
        """
        fields = _stat_fields(pid)
        return cls(pid, None if fields is None else fields[19])

    def recycled(self) -> bool:
        """Whether the pid now belongs to another process (or the identity is unknown)."""
        current = start_time(self.pid)
        return self.start is None or (current is not None and current != self.start)

    def members(self) -> list[int]:
        """Live processes of this group; empty if the pid was recycled."""
        return [] if self.recycled() else group_members(self.pid)

    def signal(self, signum: int) -> bool:
        """Send ``signum`` to the group if it is still ours and not empty; return whether sent."""
        if not self.members():
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)
            return True
        return False


def _wait_empty(leaders: Sequence[GroupLeader], timeout_s: float,
                reap: Callable[[], object], poll_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        reap()
        if not any(leader.members() for leader in leaders):
            reap()  # a leader that just exited
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def stop_groups(leaders: Iterable[GroupLeader], *, grace_s: float,
                reap: Callable[[], object] = lambda: None, poll_s: float = 0.05) -> list[int]:
    """SIGTERM the groups together, SIGKILL what remains after ``grace_s``; return survivors.

    ``reap`` collects exit codes of processes that are our children (so they do not linger as
    zombies). Groups whose leader pid was recycled are never signalled. The result lists the
    pids still alive after the SIGKILL and another ``grace_s`` (normally empty).
    """
    leaders = list(leaders)
    for leader in leaders:
        leader.signal(signal.SIGTERM)
    if _wait_empty(leaders, grace_s, reap, poll_s):
        return []
    for leader in leaders:
        leader.signal(signal.SIGKILL)
    _wait_empty(leaders, grace_s, reap, poll_s)
    return sorted(pid for leader in leaders for pid in leader.members())
