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

import functools
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import pytest

from flops_manager.adapters.docker_nodes import node_object_name
from tests.fixtures.node_data import (
    ACCURACY_THRESHOLD,
    check_one_aggregator_per_cluster,
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


def node_env(manager: Manager, podman_socket: str) -> dict[str, str]:
    """The CLI's environment: the manager's API and token, the engine the nodes run on."""
    return {**os.environ, "FLOPS_API_URL": manager.base.removesuffix("/api/v1"),
            "FLOPS_API_TOKEN": TOKEN,
            "FLOPS_ORCHESTRATOR_URI": podman_socket.replace("unix://", "docker+unix://"),
            "FLWR_TELEMETRY_ENABLED": "0"}


def start_nodes_with_data(env: dict[str, str], node_image: str, clusters: dict[str, str],
                          files: list[Path], tag: str) -> None:
    """``flops node container-start`` each node in its cluster; push one file to each."""
    port = env["FLOPS_API_URL"].rsplit(":", 1)[1]
    for node, cluster in clusters.items():
        started = flops(env, "node", "container-start", "--name", node, "--cluster", cluster,
                        "--image", node_image, "--manager", f"http://{HOST}:{port}",
                        "--advertise-host", host_address(), "--port", str(free_port()),
                        "--report-interval", "1")
        assert started.returncode == 0, started.stderr

    def online() -> list[str]:
        listed = json.loads(flops(env, "node", "ls", "--json").stdout or "[]")
        return sorted(n["name"] for n in listed if n["status"] == "online")

    wait_for(lambda: online() == sorted(clusters), timeout=180,
             what=f"{len(clusters)} node containers online")
    for node, path in zip(clusters, files, strict=True):
        pushed = flops(env, "data", "push", "--node", node, "--tag", tag, "--label", "label",
                       str(path))
        assert pushed.returncode == 0, pushed.stderr

    def listed() -> int:
        return len([d for d in json.loads(flops(env, "data", "ls", "--json").stdout)
                    if d.get("tag") == tag])

    wait_for(lambda: listed() == len(clusters), timeout=60,
             what=f"the {len(clusters)} data sets in the nodes' reports")


def submit(manager: Manager, repo: Path, spec: dict[str, Any]) -> str:
    """POST a project of ``repo`` with ``spec``; return its id."""
    created = manager.post("projects", {"repository": {"url": repo.as_uri()}, "spec": spec})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def no_containers(engine: docker.DockerClient, pid: str) -> bool:
    """Whether project ``pid`` has no container left."""
    return not project_containers(engine, pid)


def remove_project_and_nodes(manager: Manager, engine: docker.DockerClient, env: dict[str, str],
                             pids: list[str], nodes: list[str]) -> None:
    """Delete the projects, wait for their containers to go, remove the nodes and volumes."""
    for pid in pids:
        manager.delete(f"projects/{pid}")
        wait_for(functools.partial(no_containers, engine, pid), timeout=180,
                 what=f"removal of the containers of {pid}")
    for node in nodes:
        flops(env, "node", "container-rm", "--name", node, "--volume")
    left = {c.name for c in engine.containers.list(all=True)}
    assert not left & {node_object_name(n) for n in nodes}


@pytest.mark.timeout(2400)
def test_node_containers_train_where_the_data_lives(
        manager: Manager, engine: docker.DockerClient, node_image: str, podman_socket: str,
        repos_root: Path, mlflow_port: int, tmp_path: Path) -> None:
    env = node_env(manager, podman_socket)
    files, x_held, y_held = split_non_iid(tmp_path)
    pids: list[str] = []
    try:
        start_nodes_with_data(env, node_image, dict.fromkeys(NODES, "lab"), files, "digits")
        repo = make_repo(repos_root / "digits-nodes")
        pid = submit(manager, repo, {
            "name": "digits-node-containers", "data_tags": ["digits"],
            "training": {"rounds": 5, "min_available_learners": 3,
                         "learner_config": {"local_epochs": 1, "learning_rate": 0.05}}})
        pids.append(pid)
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

        # mock data on the same nodes: a provider container per node writes its partition
        mock_pid = submit(manager, repo, {
            "name": "mock-on-node-containers", "training": {"rounds": 2, "learners": 3},
            "mock_data": {"partitioner": "dirichlet", "alpha": 0.5, "seed": 1}})
        pids.append(mock_pid)
        seen = {}
        mock = wait_phase(manager, engine, mock_pid, "completed", 1200, seen)
        assert len(seen.get("mock_data_provider", set())) == 3, seen
        assert "data_server" not in seen, seen
        tag = f"mock-{mock_pid}"

        def records(node: str) -> list[dict[str, Any]]:
            lines = (volume_dir(engine, node) / "access.jsonl").read_text().splitlines()
            return [r for r in map(json.loads, lines) if r["target"].startswith(f"{tag}/")]

        for entry in mock["placement"]:
            node, index = entry["node"], entry["learner"]
            assert entry["rows"] > 0, entry
            mine = records(node)
            # partition i written to node i by its own provider, read there by learner i only,
            # both from inside the node's network
            assert {(r["op"], r["sub"], r["target"]) for r in mine
                    if r["op"] in ("read", "write")} == {
                ("write", f"mock-provider:{mock_pid}/{index}", f"{tag}/part-{index}"),
                ("read", f"learner:{mock_pid}/{index}", f"{tag}/part-{index}")}, (node, mine)
            assert all(peer_ip(r["peer"]) in subnet(engine, node) for r in mine
                       if r["op"] in ("read", "write")), mine
        # the project ended: each node drops its partition at its next report
        wait_for(lambda: all(any(r["op"] == "drop" and r["sub"] == "node" for r in records(n))
                             for n in NODES), timeout=60,
                 what="the nodes dropping the ended project's mock data")
        assert not [p for n in NODES for p in volume_dir(engine, n).rglob(f"{tag}/*.parquet")]
    finally:
        remove_project_and_nodes(manager, engine, env, pids, list(NODES))


@pytest.mark.timeout(2400)
def test_hierarchical_project_on_node_containers_gets_one_cluster_aggregator_per_cluster(
        manager: Manager, engine: docker.DockerClient, node_image: str, podman_socket: str,
        repos_root: Path, mlflow_port: int, tmp_path: Path) -> None:
    env = node_env(manager, podman_socket)
    clusters = {"hnode-1": "north", "hnode-2": "north", "hnode-3": "south", "hnode-4": "south"}
    files, x_held, y_held = split_non_iid(tmp_path, nodes=len(clusters))
    pids: list[str] = []
    try:
        start_nodes_with_data(env, node_image, clusters, files, "digits-h")
        pid = submit(manager, make_repo(repos_root / "digits-hierarchical-nodes"), {
            "name": "digits-node-clusters", "data_tags": ["digits-h"],
            "training": {"mode": "hierarchical", "cycles": 2, "rounds": 2,
                         "learner_config": {"local_epochs": 1, "learning_rate": 0.05}}})
        pids.append(pid)
        seen: dict[str, set[str]] = {}
        project = wait_phase(manager, engine, pid, "completed", 1800, seen)
        assert len(seen.get("learners", set())) == 4, seen
        assert len(seen.get("cluster_aggregator", set())) == 2, seen

        placement = project["placement"]
        check_one_aggregator_per_cluster(placement, clusters,
                                         flops(env, "project", "status", pid).stdout)
        # each learner read only its own node, from inside that node's network
        for entry in placement:
            node = entry["node"]
            lines = (volume_dir(engine, node) / "access.jsonl").read_text().splitlines()
            reads = [r for r in map(json.loads, lines) if r["op"] == "read"]
            assert {r["sub"] for r in reads} == {f"learner:{pid}/{entry['learner']}"}, entry
            assert all(peer_ip(r["peer"]) in subnet(engine, node) for r in reads), reads
        held_out = held_out_accuracy(f"http://127.0.0.1:{mlflow_port}", project, x_held, y_held)
        print(f"hierarchical on node containers: held-out accuracy {held_out:.3f}")
        assert held_out >= ACCURACY_THRESHOLD, held_out
    finally:
        remove_project_and_nodes(manager, engine, env, pids, list(clusters))
