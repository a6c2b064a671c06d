"""A component whose configuration is unusable says why on stderr, then exits 2."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flops_contracts.entrypoint import report_config_error

ROOT = Path(__file__).resolve().parents[2]


class _Recorder(io.StringIO):
    """A stderr that remembers each write and flush."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.flushed = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.flushed += 1


def test_the_reason_is_one_flushed_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """One write of the whole message: container logs keep it even when read by their tail."""
    err = _Recorder()
    monkeypatch.setattr(sys, "stderr", err)
    assert report_config_error("flops-aggregator", "invalid settings:\n  FLOPS_X: bad") == 2
    assert err.writes == ["flops-aggregator: invalid settings:\n  FLOPS_X: bad\n"]
    assert err.flushed >= 1


@pytest.mark.parametrize("module", ["aggregator", "inference_server"])
def test_an_unbuffered_component_exits_2_with_its_reason(module: str) -> None:
    """As in FLOps images (``PYTHONUNBUFFERED=1``): the enrollment refusal is printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FLOPS_ENROLL_TOKEN": "fe1.p.g.s",
           "FLOPS_ENROLL_URL": "ftp://manager"}
    done = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith("FLOPS_ENROLL_URL must be the manager's http(s) URL\n"), \
        done.stderr
