"""A node agent keeps serving while the manager is down and reports again once it is back."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
from werkzeug.serving import make_server

from flops_dataplane.client import DataClient
from flops_dataplane.node_agent import NodeAgentSettings, start_agent
from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.mongo_node_store import MongoNodeStore
from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.app import create_app
from flops_manager.cli.client import ApiClient
from tests.fixtures.servers import NxServer, wait_for
from tests.manager.conftest import make_settings


class Manager:
    """A manager on a fixed port over one database, that can be stopped and started again."""

    def __init__(self, url: str, db: str) -> None:
        self.url, self.db = url, db
        self.port = 0

    def start(self) -> None:
        app = create_app(make_settings(), store=MongoProjectStore(self.url, db_name=self.db),
                         orchestrator=MemoryOrchestrator(),
                         nodes=MongoNodeStore(self.url, db_name=self.db))
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_agent_survives_a_manager_outage(nx_server: NxServer, tmp_path: Path) -> None:
    manager = Manager(nx_server.url, "t" + uuid.uuid4().hex[:12])
    manager.start()
    base = f"http://127.0.0.1:{manager.port}"
    alice = ApiClient(base, "tok-alice")
    token = alice.request("POST", "nodes/edge-1/token")["token"]
    agent = start_agent(NodeAgentSettings(name="edge-1", data_dir=tmp_path / "edge-1",
                                          manager_url=base, report_interval_s=0.2),
                        {"FLOPS_NODE_TOKEN": token})
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: alice.request("GET", "nodes/edge-1")["status"] == "online", timeout=10)
        grant = alice.request("POST", "nodes/edge-1/data-grant",
                              json={"ops": ["read", "write"], "tags": ["t"]})
        manager.stop()
        time.sleep(1.0)  # several failed reports
        assert runner.is_alive()
        with DataClient(grant["location"], grant["token"]) as client:  # still serving
            client.upload(pa.table({"a": [1, 2, 3]}), "t", "during-outage")
            assert client.read(["t"]).num_rows == 3
        back = time.time()
        manager.start()
        wait_for(lambda: (alice.request("GET", "nodes/edge-1")["last_seen"] or 0) > back and
                 [d["name"] for d in alice.request("GET", "nodes/edge-1")["datasets"]] ==
                 ["during-outage"], timeout=10)
    finally:
        agent.stop()
        runner.join(10)
        manager.stop()
