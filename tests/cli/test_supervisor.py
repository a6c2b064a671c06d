"""The one supervisor helper: stop our process groups, never a recycled pid's."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from flops_manager.supervisor import GroupLeader, group_members, start_time, stop_groups


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for popen in started:
        popen.kill()
        popen.wait()


def _start(spawn: list[subprocess.Popen[bytes]], script: str) -> subprocess.Popen[bytes]:
    popen = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    spawn.append(popen)
    return popen


def _members_appear(pgid: int, count: int) -> list[int]:
    for _ in range(200):
        members = group_members(pgid)
        if len(members) >= count:
            return members
        time.sleep(0.05)
    return group_members(pgid)


def test_a_recycled_pid_is_never_signalled(spawn):
    popen = _start(spawn, "sleep 600")
    real = GroupLeader.of(popen.pid)
    assert real.start is not None and real.members() == [popen.pid]
    # the same pid, but the record says it started at another time: another process now
    stale = GroupLeader(popen.pid, str(int(real.start) - 1))
    assert stale.recycled() and stale.members() == []
    assert stale.signal(15) is False
    assert stop_groups([stale], grace_s=0.2) == []
    assert popen.poll() is None and start_time(popen.pid) == real.start  # untouched
    assert GroupLeader(popen.pid, None).recycled()  # an unknown identity is never trusted


def test_sigterm_then_sigkill_stops_the_whole_group(spawn):
    # the shell and its child ignore SIGTERM: only SIGKILL after the grace period stops them
    popen = _start(spawn, "trap '' TERM; sleep 600 & wait")
    leader = GroupLeader.of(popen.pid)
    members = _members_appear(popen.pid, 2)
    assert len(members) == 2
    assert stop_groups([leader], grace_s=0.5, reap=popen.poll) == []
    assert popen.returncode is not None
    assert all(start_time(pid) is None for pid in members)


def test_members_left_by_an_exited_leader_are_stopped(spawn):
    popen = _start(spawn, "sleep 600 & echo started")
    leader = GroupLeader.of(popen.pid)
    popen.wait()  # the leader is gone, its child still runs in the group
    members = _members_appear(popen.pid, 1)
    assert members and popen.pid not in members
    assert stop_groups([leader], grace_s=2.0) == []
    assert group_members(popen.pid) == []
