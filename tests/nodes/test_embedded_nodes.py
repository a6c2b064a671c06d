"""Data where it lives, end to end: `flops up --nodes 3`, non-IID digits pushed one file per
node with `flops data push`, and a project with data_tags and no mock_data trained on them.

The hierarchical test spreads four nodes over two clusters (`flops up --clusters 2`) and checks
that the project gets one cluster aggregator per node cluster, each with its cluster's learners.

Everything is real: the embedded stack (manager, nx-27017, broker, MLflow), three node agents
as processes, the local backend's learner and aggregator processes, and the `flops` CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.node_data import (
    ACCURACY_THRESHOLD,
    check_one_aggregator_per_cluster,
    flops,
    held_out_accuracy,
    split_non_iid,
)
from tests.fixtures.repos import processes_mentioning
from tests.fixtures.servers import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODES = ("node-1", "node-2", "node-3")


def stack_env(data: Path) -> dict[str, str]:
    """This process's environment for a CLI with its own embedded stack in ``data``."""
    env = {k: v for k, v in os.environ.items() if k not in ("FLOPS_API_URL", "FLOPS_API_TOKEN")}
    return env | {"FLOPS_DATA_DIR": str(data), "FLWR_TELEMETRY_ENABLED": "0"}


def create_and_watch(env: dict[str, str], tmp_path: Path, spec: Mapping[str, Any]) -> str:
    """Create a digits_sklearn project from ``spec`` and watch it end; return its id."""
    spec_file = tmp_path / "project.json"
    spec_file.write_text(json.dumps(spec))
    created = flops(env, "project", "create", "-f", str(spec_file), "--repo",
                    str(ROOT / "examples" / "digits_sklearn"), "--quiet")
    assert created.returncode == 0, created.stderr
    project_id = created.stdout.strip().splitlines()[-1]
    watched = flops(env, "project", "watch", project_id, timeout=1500)
    assert watched.returncode == 0, (watched.stdout[-3000:], watched.stderr[-3000:])
    return project_id


def test_three_nodes_train_where_the_data_lives(tmp_path: Path) -> None:
    data = tmp_path / "flops-data"
    env = stack_env(data)
    files, x_held, y_held = split_non_iid(tmp_path)
    try:
        up = flops(env, "up", "--nodes", "3", "--json")
        assert up.returncode == 0, up.stderr
        record = json.loads(up.stdout)
        assert record["nodes"] == list(NODES)
        for node, path in zip(NODES, files, strict=True):
            pushed = flops(env, "data", "push", "--node", node, "--tag", "digits",
                           "--label", "label", str(path))
            assert pushed.returncode == 0, pushed.stderr
        # the inventory reaches the manager (the agents report right after a push)
        listing = json.loads(flops(env, "data", "ls", "--json").stdout)
        assert sorted(r["node"] for r in listing) == list(NODES)
        histograms = {r["node"]: r["label_histogram"] for r in listing}
        assert all(len(h) == 10 for h in histograms.values())  # skewed, not disjoint
        spec = {"spec": {
            "name": "digits-on-nodes", "data_tags": ["digits"],
            "training": {"rounds": 5, "min_available_learners": 3,
                         "learner_config": {"local_epochs": 1, "learning_rate": 0.05}},
        }}
        project_id = create_and_watch(env, tmp_path, spec)
        status = flops(env, "project", "status", project_id)
        assert status.returncode == 0, status.stdout
        # one learner per node, as the status shows
        for index, node in enumerate(NODES):
            assert f"learner {index} on node {node} (cluster local)" in status.stdout
        project = json.loads(flops(env, "project", "status", project_id, "--json").stdout)
        assert project["phase"] == "completed", project["last_error"]
        assert project["progress"]["metrics"]["accuracy"] >= ACCURACY_THRESHOLD
        # the trained model on digits no node ever held
        held_out = held_out_accuracy(record["mlflow_url"], project, x_held, y_held)
        print(f"federated accuracy {project['progress']['metrics']['accuracy']:.3f}, "
              f"held-out accuracy {held_out:.3f}")
        assert held_out >= ACCURACY_THRESHOLD, held_out
        # per-learner data statistics next to the accuracy curve: node, rows, label histogram
        from mlflow.tracking import MlflowClient

        params = MlflowClient(record["mlflow_url"]).get_run(
            project["model"]["mlflow_run_id"]).data.params
        rows = {r["node"]: r["rows"] for r in listing}
        for index, node in enumerate(NODES):
            assert params[f"data.learner_{index}.node"] == node
            assert params[f"data.learner_{index}.rows"] == str(rows[node])
            assert json.loads(params[f"data.learner_{index}.labels"]) == histograms[node]
        # each node's bytes exist only under its own directory
        for node, path in zip(NODES, files, strict=True):
            parquet = data / "nodes" / node / "data" / "digits" / f"{path.stem}.parquet"
            assert parquet.is_file()
            others = [p for p in (data / "nodes").rglob("*.parquet") if p != parquet]
            assert all(p.read_bytes() != parquet.read_bytes() for p in others)
        # each learner read from its own node only (the agents' access records prove it)
        for index, node in enumerate(NODES):
            records = [json.loads(line) for line in
                       (data / "nodes" / node / "access.jsonl").read_text().splitlines()]
            readers = {r["sub"] for r in records if r["op"] == "read"}
            assert readers == {f"learner:{project_id}/{index}"}, (node, readers)
            assert {r["target"] for r in records if r["op"] == "read"} == {
                f"digits/digits-{index}"}
    finally:
        flops(env, "down")
    assert processes_mentioning(str(data)) == []


def test_hierarchical_project_gets_one_cluster_aggregator_per_node_cluster(
        tmp_path: Path) -> None:
    data = tmp_path / "flops-data"
    env = stack_env(data)
    nodes = ("node-1", "node-2", "node-3", "node-4")
    files, x_held, y_held = split_non_iid(tmp_path, nodes=len(nodes))
    try:
        refused = flops(env, "up", "--nodes", "1", "--clusters", "2")
        assert refused.returncode == 1 and "every cluster needs a node" in refused.stderr
        up = flops(env, "up", "--nodes", "4", "--clusters", "2", "--json")
        assert up.returncode == 0, up.stderr
        record = json.loads(up.stdout)
        # dealt round-robin: node-1 and node-3 in cluster-1, node-2 and node-4 in cluster-2
        cluster_of = {n: f"cluster-{i % 2 + 1}" for i, n in enumerate(nodes)}
        assert record["clusters"] == cluster_of
        for node, path in zip(nodes, files, strict=True):
            pushed = flops(env, "data", "push", "--node", node, "--tag", "digits-h",
                           "--label", "label", str(path))
            assert pushed.returncode == 0, pushed.stderr
        listed = json.loads(flops(env, "node", "ls", "--json").stdout)
        assert {n["name"]: n["cluster"] for n in listed} == cluster_of
        spec = {"spec": {
            "name": "digits-on-clusters", "data_tags": ["digits-h"],
            "training": {"mode": "hierarchical", "cycles": 2, "rounds": 2,
                         "learner_config": {"local_epochs": 1, "learning_rate": 0.05}},
        }}
        project_id = create_and_watch(env, tmp_path, spec)
        project = json.loads(flops(env, "project", "status", project_id, "--json").stdout)
        assert project["phase"] == "completed", project["last_error"]
        placement = project["placement"]
        # one cluster aggregator per node cluster, each cluster's two learners under it
        check_one_aggregator_per_cluster(placement, cluster_of,
                                         flops(env, "project", "status", project_id).stdout)
        # every learner read its own node only
        for entry in placement:
            records = [json.loads(line) for line in
                       (data / "nodes" / entry["node"] / "access.jsonl").read_text()
                       .splitlines()]
            readers = {r["sub"] for r in records if r["op"] == "read"}
            assert readers == {f"learner:{project_id}/{entry['learner']}"}, entry
        held_out = held_out_accuracy(record["mlflow_url"], project, x_held, y_held)
        print(f"hierarchical held-out accuracy {held_out:.3f}")
        assert held_out >= ACCURACY_THRESHOLD, held_out
    finally:
        flops(env, "down")
    assert processes_mentioning(str(data)) == []


def test_mock_data_fills_the_nodes_partition_i_to_node_i(tmp_path: Path) -> None:
    """A mock data project on a stack with nodes takes the path of pushed data: one mock data
    provider per node writes that node's partition, and each learner reads only its node."""
    from sklearn.datasets import load_digits

    from flops_dataplane.partitioners import holdout_split

    data = tmp_path / "flops-data"
    env = stack_env(data)
    mock = {"dataset": "sklearn:digits", "partitioner": "dirichlet", "alpha": 0.5, "seed": 3,
            "holdout_fraction": 0.2}
    try:
        up = flops(env, "up", "--nodes", "3", "--json")
        assert up.returncode == 0, up.stderr
        record = json.loads(up.stdout)
        # more learners than online nodes: refused, naming the nodes and what to do
        too_many = tmp_path / "too-many.json"
        too_many.write_text(json.dumps({"spec": {
            "name": "mock-too-many", "mock_data": mock, "training": {"rounds": 1,
                                                                     "learners": 4}}}))
        refused = flops(env, "project", "create", "-f", str(too_many), "--repo",
                        str(ROOT / "examples" / "digits_sklearn"), "--quiet")
        assert refused.returncode != 0
        assert "need 4 online node(s)" in refused.stderr, refused.stderr
        assert "node-3 (online, cluster local)" in refused.stderr, refused.stderr

        spec = {"spec": {
            "name": "mock-on-nodes", "mock_data": mock,
            "training": {"rounds": 4, "learners": 3,
                         "learner_config": {"local_epochs": 1, "learning_rate": 0.05}},
        }}
        project_id = create_and_watch(env, tmp_path, spec)
        project = json.loads(flops(env, "project", "status", project_id, "--json").stdout)
        assert project["phase"] == "completed", project["last_error"]
        tag = f"mock-{project_id}"
        placement = {int(p["learner"]): p for p in project["placement"]}
        assert {i: p["node"] for i, p in placement.items()} == dict(enumerate(NODES))
        status = flops(env, "project", "status", project_id).stdout
        for index, node in enumerate(NODES):
            assert f"learner {index} on node {node} (cluster local)" in status, status
        # no project-wide data server: only the nodes' providers, learners and aggregator ran
        kinds = {key.partition("/")[0] for key in project["components"]}
        assert "data_server" not in kinds and "mock_data_provider" in kinds, kinds
        # every kept digit went to exactly one node; the held-out fifth to none
        x, y = load_digits(return_X_y=True)
        kept, held = holdout_split(len(y), fraction=0.2, seed=3)
        assert sum(p["rows"] for p in placement.values()) == len(kept)
        # the placement and MLflow show each learner's rows and labels
        from mlflow.tracking import MlflowClient

        params = MlflowClient(record["mlflow_url"]).get_run(
            project["model"]["mlflow_run_id"]).data.params
        for index in range(len(NODES)):
            rows = placement[index]["rows"]
            assert rows > 0 and params[f"data.learner_{index}.rows"] == str(rows)
            labels = json.loads(params[f"data.learner_{index}.labels"])
            assert labels == placement[index]["label_histogram"]
            assert sum(labels.values()) == rows
        # node i was written by its own provider only (partition i) and read by learner i only
        def records(node: str) -> list[dict[str, Any]]:
            path = data / "nodes" / node / "access.jsonl"
            return [json.loads(line) for line in path.read_text().splitlines()]

        for index, node in enumerate(NODES):
            mine = records(node)
            writes = {(r["sub"], r["target"]) for r in mine if r["op"] == "write"}
            assert writes == {(f"mock-provider:{project_id}/{index}", f"{tag}/part-{index}")}
            reads = {(r["sub"], r["target"]) for r in mine if r["op"] == "read"}
            assert reads == {(f"learner:{project_id}/{index}", f"{tag}/part-{index}")}, reads
        # the project ended: every node drops its partition at its next report
        def dropped() -> bool:
            return all(any(r["op"] == "drop" and r["sub"] == "node" for r in records(node))
                       for node in NODES)

        wait_for(dropped, timeout=60, what="the nodes dropping the ended project's mock data")
        assert not list((data / "nodes").rglob(f"{tag}/*.parquet"))
        wait_for(lambda: not [r for r in json.loads(flops(env, "data", "ls", "--json").stdout)
                              if r["tag"] == tag], timeout=60,
                 what="the nodes' inventory without the mock data")
        held_out = held_out_accuracy(record["mlflow_url"], project, x[held] / 16.0, y[held])
        print(f"mock data on nodes: held-out accuracy {held_out:.3f}")
        assert held_out >= ACCURACY_THRESHOLD, held_out
    finally:
        flops(env, "down")
    assert processes_mentioning(str(data)) == []


def test_hierarchical_mock_data_on_nodes_gets_one_cluster_aggregator_per_node_cluster(
        tmp_path: Path) -> None:
    """Mock data on nodes in two clusters: per cluster, that many nodes get a partition and a
    learner, under their cluster's aggregator."""
    data = tmp_path / "flops-data"
    env = stack_env(data)
    try:
        up = flops(env, "up", "--nodes", "4", "--clusters", "2", "--json")
        assert up.returncode == 0, up.stderr
        cluster_of = json.loads(up.stdout)["clusters"]
        spec = {"spec": {
            "name": "mock-on-clusters", "mock_data": {"partitioner": "iid", "seed": 2},
            "training": {"mode": "hierarchical", "cycles": 2, "rounds": 1, "learners": 2,
                         "learner_config": {"local_epochs": 1, "learning_rate": 0.05}},
        }}
        project_id = create_and_watch(env, tmp_path, spec)
        project = json.loads(flops(env, "project", "status", project_id, "--json").stdout)
        assert project["phase"] == "completed", project["last_error"]
        check_one_aggregator_per_cluster(project["placement"], cluster_of,
                                         flops(env, "project", "status", project_id).stdout)
        assert all(p["rows"] > 0 for p in project["placement"]), project["placement"]
        assert project["progress"]["metrics"]["accuracy"] >= ACCURACY_THRESHOLD
    finally:
        flops(env, "down")
    assert processes_mentioning(str(data)) == []
