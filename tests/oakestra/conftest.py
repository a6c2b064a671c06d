from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flops_manager.adapters.oakestra.client import RootOrchestratorClient
from flops_manager.adapters.oakestra.orchestrator import OakestraOrchestrator
from flops_manager.adapters.oakestra.settings import OakestraSettings
from tests.fixtures.servers import free_port
from tests.oakestra.contract_server import ContractServer


def loopback_rr_subnet() -> str:
    """A loopback round-robin subnet of this test process's own.

    The contract server listens on the round-robin IPs it hands out, and those are a hash of
    the application and service name (the shared tracking server gets the same one in every
    fake); two pytest workers running Oakestra fakes at once therefore need disjoint subnets,
    or their services' ports collide (``127.30.0.0/16`` for the first worker, ``127.31...``
    for the second).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    return f"127.{30 + index}.0.0/16"


def make_settings(server: ContractServer, **overrides: Any) -> OakestraSettings:
    values: dict[str, Any] = {
        "base_url": server.url, "username": "Admin", "password": "Admin",
        "version": server.state.version, "backoff_s": 0.01, "backoff_max_s": 0.05,
        "read_timeout_s": 10.0,
    }
    values.update(overrides)
    return OakestraSettings.model_validate(values)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ContractServer]]:
    servers: list[ContractServer] = []

    def start(**options: Any) -> ContractServer:
        workdir = tmp_path / f"oakestra-{len(servers)}"
        server = ContractServer(workdir, port=free_port(), **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., ContractServer]) -> ContractServer:
    server = start_server()
    server.state.add_cluster("clusterA")
    return server


@pytest.fixture
def orchestrator(server: ContractServer) -> Iterator[OakestraOrchestrator]:
    settings = make_settings(server)
    orch = OakestraOrchestrator(RootOrchestratorClient(settings), settings)
    yield orch
    orch.close()
