"""A real manager (Flask app over HTTP, MongoDB wire protocol via nx-27017) and node agents."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from flops_dataplane.node_agent import NodeAgent, NodeAgentSettings, start_agent
from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.mongo_node_store import MongoNodeStore
from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.app import create_app
from flops_manager.cli.client import ApiClient
from tests.fixtures.servers import NxServer
from tests.manager.conftest import make_settings


@pytest.fixture(scope="session")
def nx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NxServer]:
    server = NxServer(tmp_path_factory.mktemp("nx")).start()
    yield server
    server.stop()


@pytest.fixture()
def manager(nx_server: NxServer) -> Iterator[str]:
    """The manager's base URL (users: alice ``tok-alice``, bob ``tok-bob``)."""
    db = "t" + uuid.uuid4().hex[:12]
    store = MongoProjectStore(nx_server.url, db_name=db)
    nodes = MongoNodeStore(nx_server.url, db_name=db)
    app = create_app(make_settings(), store=store, orchestrator=MemoryOrchestrator(),
                     nodes=nodes)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    store.close()
    nodes.close()


@pytest.fixture()
def alice(manager: str) -> ApiClient:
    return ApiClient(manager, "tok-alice")


@pytest.fixture()
def bob(manager: str) -> ApiClient:
    return ApiClient(manager, "tok-bob")


StartNode = Callable[..., NodeAgent]


@pytest.fixture()
def start_node(manager: str, alice: ApiClient, tmp_path: Path) -> Iterator[StartNode]:
    """Start a node agent of alice (enrolled with a fresh node token), reporting every 0.2 s."""
    agents: list[tuple[NodeAgent, threading.Thread]] = []

    def start(name: str, cluster: str = "local", client: ApiClient = alice) -> NodeAgent:
        token = client.request("POST", f"nodes/{name}/token")["token"]
        settings = NodeAgentSettings(name=name, cluster=cluster, data_dir=tmp_path / name,
                                     manager_url=manager, report_interval_s=0.2)
        agent = start_agent(settings, {"FLOPS_NODE_TOKEN": token})
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        agents.append((agent, thread))
        return agent

    yield start
    for agent, thread in agents:
        agent.stop()
        thread.join(10)
