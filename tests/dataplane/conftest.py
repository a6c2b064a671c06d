from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flops_dataplane.server import DataServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes that import the project from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOPS_DATA_TOKEN", raising=False)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., DataServer]]:
    started: list[DataServer] = []

    def start(root: Path | None = None, token: str | None = None) -> DataServer:
        # A Flight server serves from construction on; serve() would only block.
        server = DataServer(root or tmp_path / f"root{len(started)}", port=0, token=token)
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()


@pytest.fixture
def server(start_server: Callable[..., DataServer]) -> DataServer:
    return start_server()
