"""The FLOps node agent as a container: built by containers/build.sh, its data in a volume.

A node operator runs the ``node`` image with a volume, the manager's URL and, on the first
start only, a node token. The test enrolls such a container with a manager on the host, pushes
data through the published data server port, then replaces the container by a new one on the
same volume without a token: it comes back as the same node, reports the same data set, and
serves it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from werkzeug.serving import make_server

from flops_dataplane.client import DataClient
from flops_manager.adapters.memory_node_store import MemoryNodeStore
from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.app import create_app
from flops_manager.cli import data
from flops_manager.cli.client import ApiClient
from tests.containers.stack import host_address
from tests.fixtures.servers import free_port, wait_for
from tests.fixtures.tools import require_tools
from tests.manager.conftest import make_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/flops-test/node:latest"


def podman(*args: str, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} exited {done.returncode}: "
                             f"{done.stderr[-2000:]}")
    return done


@pytest.fixture(scope="module")
def node_image(base_image: str) -> str:
    """The node stage of containers/services.Containerfile (the compose suite's layers)."""
    require_tools(("buildah", "podman"), "scripts/setup_containers.sh installs them")
    env = {**os.environ, "FLOPS_BASE_IMAGE": base_image, "FLOPS_PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "containers" / "build.sh"), "node", IMAGE],
                          env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return IMAGE


@pytest.fixture
def manager() -> Iterator[str]:
    """A manager on every address of this host (containers reach it at its address)."""
    app = create_app(make_settings(), store=MemoryProjectStore(),
                     orchestrator=MemoryOrchestrator(), nodes=MemoryNodeStore())
    server = make_server("0.0.0.0", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host_address()}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_node_image_keeps_its_identity_and_data_in_its_volume(
        node_image: str, manager: str, tmp_path: Path) -> None:
    alice = ApiClient(manager, "tok-alice")
    name, volume, port = "edge-c", "flops-test-node-" + uuid.uuid4().hex[:8], free_port()
    containers: list[str] = []

    def run_node(env: dict[str, str]) -> str:
        container = "flops-test-node-" + uuid.uuid4().hex[:8]
        settings = {"FLOPS_API_URL": manager, "FLOPS_NODE_NAME": name,
                    "FLOPS_NODE_CLUSTER": "lab", "FLOPS_NODE_PORT": str(port),
                    "FLOPS_NODE_ADVERTISE_HOST": host_address(),
                    "FLOPS_NODE_REPORT_INTERVAL_S": "1", **env}
        podman("run", "-d", "--name", container, "-v", f"{volume}:/var/lib/flops/node",
               "-p", f"{port}:{port}", *(f"--env={k}={v}" for k, v in settings.items()),
               node_image)
        containers.append(container)
        return container

    def node() -> dict[str, Any]:
        return dict(alice.request("GET", f"nodes/{name}"))

    try:
        token = alice.request("POST", f"nodes/{name}/token")["token"]
        first = run_node({"FLOPS_NODE_TOKEN": token})
        wait_for(lambda: node()["status"] == "online", timeout=120,
                 what=f"the node container reporting (log: podman logs {first})")
        assert node()["location"] == f"grpc://{host_address()}:{port}"
        assert node()["cluster"] == "lab" and node()["platform"] == "linux/amd64"
        assert podman("healthcheck", "run", first, check=False).returncode == 0
        source = tmp_path / "day-1.parquet"
        pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "label": [0, 1, 1]}), source)
        pushed = data.push(alice, name, "sensors", source, label="label")
        assert pushed["rows"] == 3
        wait_for(lambda: [d["name"] for d in node()["datasets"]] == ["day-1"], timeout=30,
                 what="the pushed data set in the node's report")

        # a new container on the same volume, without a token: the same node, the same data
        podman("rm", "-f", "-t", "2", first)
        gone = time.time()
        second = run_node({})
        wait_for(lambda: (node()["last_seen"] or 0) > gone and node()["status"] == "online",
                 timeout=120, what=f"the new container reporting (podman logs {second})")
        assert [d["name"] for d in node()["datasets"]] == ["day-1"]
        assert node()["datasets"][0]["label_histogram"] == {"0": 1, "1": 2}
        grant = alice.request("POST", f"nodes/{name}/data-grant",
                              json={"ops": ["read"], "tags": ["sensors"]})
        with DataClient(grant["location"], grant["token"]) as client:
            assert client.read(["sensors"]).column("x").to_pylist() == [1.0, 2.0, 3.0]
        # what the volume holds: the node's credentials (0600), its data, its access records
        listing = podman("run", "--rm", "-v", f"{volume}:/n", "--entrypoint", "sh", node_image,
                         "-c", "stat -c '%a %n' /n/node.json; "
                               "test -s /n/data/sensors/day-1.parquet && echo data; "
                               "wc -l < /n/access.jsonl").stdout.split("\n")
        assert listing[0] == "600 /n/node.json" and listing[1] == "data", listing
        assert int(listing[2]) >= 2  # the write and the read
    finally:
        if containers:
            podman("rm", "-f", "-t", "2", *containers, check=False)
        podman("volume", "rm", "-f", volume, check=False)
