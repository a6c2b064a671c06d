"""Data where it lives on the Docker backend: FLOps nodes as containers, each with its volume.

The manager runs with the Docker backend (Podman's Docker API; ``stack.py``). Three node
containers (``flops node container-start``: the ``node`` image, a volume and a network each)
take one non-IID CSV file of the digits each through ``flops data push``; a project with
``data_tags`` and no ``mock_data`` is built by the builder container and trains with one
learner container per node. Each learner container joins its node's network and reads its
node's data server there; the node agents' access records (reader, data set, peer address)
prove that each learner read only its own node, over that node's network.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import docker  # type: ignore[import-untyped]
import pytest

from flops_manager.adapters.docker_nodes import node_object_name
from tests.fixtures.node_data import (
    ACCURACY_THRESHOLD,
    flops,
    held_out_accuracy,
    split_non_iid,
)
from tests.fixtures.servers import free_port, wait_for

from .conftest import make_repo
from .stack import HOST, TOKEN, Manager, host_address, project_containers, wait_phase

pytestmark = pytest.mark.integration

NODES = ("node-1", "node-2", "node-3")


def volume_dir(engine: docker.DockerClient, node: str) -> Path:
    """Where node ``node``'s volume lives on this host."""
    return Path(engine.volumes.get(node_object_name(node)).attrs["Mountpoint"])


def subnet(engine: docker.DockerClient, node: str) -> ipaddress.IPv4Network:
    """The subnet of node ``node``'s own network."""
    config = engine.networks.get(node_object_name(node)).attrs["IPAM"]["Config"][0]
    return ipaddress.IPv4Network(config["Subnet"])


def peer_ip(peer: str) -> ipaddress.IPv4Address:
    """The IPv4 address of a gRPC peer string (``ipv4:10.89.3.5:41234``)."""
    return ipaddress.IPv4Address(peer.removeprefix("ipv4:").rsplit(":", 1)[0])


@pytest.mark.timeout(2400)
def test_node_containers_train_where_the_data_lives(
        manager: Manager, engine: docker.DockerClient, node_image: str, podman_socket: str,
        repos_root: Path, mlflow_port: int, tmp_path: Path) -> None:
    api_url = manager.base.removesuffix("/api/v1")
    env = {**os.environ, "FLOPS_API_URL": api_url, "FLOPS_API_TOKEN": TOKEN,
           "FLOPS_ORCHESTRATOR_URI": podman_socket.replace("unix://", "docker+unix://"),
           "FLWR_TELEMETRY_ENABLED": "0"}
    files, x_held, y_held = split_non_iid(tmp_path)
    port = api_url.rsplit(":", 1)[1]
    pid = None
    try:
        for node in NODES:
            started = flops(env, "node", "container-start", "--name", node, "--cluster", "lab",
                            "--image", node_image, "--manager", f"http://{HOST}:{port}",
                            "--advertise-host", host_address(), "--port", str(free_port()),
                            "--report-interval", "1")
            assert started.returncode == 0, started.stderr

        def online() -> list[str]:
            listed = json.loads(flops(env, "node", "ls", "--json").stdout or "[]")
            return sorted(n["name"] for n in listed if n["status"] == "online")

        wait_for(lambda: online() == list(NODES), timeout=180, what="3 node containers online")
        for node, path in zip(NODES, files, strict=True):
            pushed = flops(env, "data", "push", "--node", node, "--tag", "digits",
                           "--label", "label", str(path))
            assert pushed.returncode == 0, pushed.stderr
        wait_for(lambda: len(json.loads(flops(env, "data", "ls", "--json").stdout)) == 3,
                 timeout=60, what="the three data sets in the nodes' reports")

        repo = make_repo(repos_root / "digits-nodes")
        spec = {"name": "digits-node-containers", "data_tags": ["digits"],
                "training": {"rounds": 5, "min_available_learners": 3,
                             "learner_config": {"local_epochs": 1, "learning_rate": 0.05}}}
        created = manager.post("projects", {"repository": {"url": repo.as_uri()}, "spec": spec})
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        seen: dict[str, set[str]] = {}
        project = wait_phase(manager, engine, pid, "completed", 1800, seen)
        assert len(seen.get("learners", set())) == 3, seen

        status = flops(env, "project", "status", pid)
        assert status.returncode == 0, status.stderr
        for index, node in enumerate(NODES):  # one learner per node
            assert f"learner {index} on node {node} (cluster lab)" in status.stdout
        assert project["progress"]["metrics"]["accuracy"] >= ACCURACY_THRESHOLD
        held_out = held_out_accuracy(f"http://127.0.0.1:{mlflow_port}", project, x_held, y_held)
        print(f"federated accuracy {project['progress']['metrics']['accuracy']:.3f}, "
              f"held-out accuracy {held_out:.3f}")
        assert held_out >= ACCURACY_THRESHOLD, held_out

        # each node's bytes exist only in its own volume
        for node, path in zip(NODES, files, strict=True):
            parquet = volume_dir(engine, node) / "data" / "digits" / f"{path.stem}.parquet"
            assert parquet.is_file(), parquet
            others = [p for other in NODES if other != node
                      for p in volume_dir(engine, other).rglob("*.parquet")]
            assert len(others) == 2 and all(p.read_bytes() != parquet.read_bytes()
                                            for p in others)
        # each learner read only its own node, from inside that node's network
        for index, node in enumerate(NODES):
            lines = (volume_dir(engine, node) / "access.jsonl").read_text().splitlines()
            reads = [r for r in map(json.loads, lines) if r["op"] == "read"]
            assert {r["sub"] for r in reads} == {f"learner:{pid}/{index}"}, (node, reads)
            assert {r["target"] for r in reads} == {f"digits/digits-{index}"}
            assert all(peer_ip(r["peer"]) in subnet(engine, node) for r in reads), reads
    finally:
        if pid is not None:
            manager.delete(f"projects/{pid}")
            wait_for(lambda: not project_containers(engine, pid), timeout=180,
                     what=f"removal of the containers of {pid}")
        for node in NODES:
            flops(env, "node", "container-rm", "--name", node, "--volume")
    left = {c.name for c in engine.containers.list(all=True)}
    assert not left & {node_object_name(n) for n in NODES}
