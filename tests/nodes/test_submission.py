"""Submitting a project with data_tags and no mock_data places it on the owner's nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flops_manager.cli import data as data_cli
from flops_manager.cli.client import ApiClient, ApiError
from flops_manager.cli.project import summary
from tests.fixtures.servers import wait_for
from tests.nodes.conftest import StartNode
from tests.nodes.test_node_agent import write_csv

REPO = {"url": "https://git.example/u/repo.git", "ref": "main"}


def submit(client: ApiClient, **training: object) -> dict[str, Any]:
    spec = {"data_tags": ["digits"], "training": {"rounds": 1, **training}}
    return dict(client.request("POST", "projects", json={"spec": spec, "repository": REPO}))


@pytest.fixture()
def two_of_three(start_node: StartNode, alice: ApiClient, tmp_path: Path) -> None:
    for name in ("n1", "n2", "n3"):
        start_node(name)
    wait_for(lambda: all(n["location"] for n in alice.request("GET", "nodes")["items"]),
             timeout=10)
    for name, rows in (("n1", 30), ("n3", 60)):
        data_cli.push(alice, name, "digits",
                      write_csv(tmp_path / f"{name}.csv", [(i, 0.1, i % 2) for i in range(rows)]))
    wait_for(lambda: sum(len(n["datasets"]) for n in alice.request("GET", "nodes")["items"])
             == 2, timeout=10)


def test_one_learner_per_node_holding_the_tags(two_of_three: None, alice: ApiClient) -> None:
    project = submit(alice)
    assert [(p["learner"], p["node"], p["rows"]) for p in project["placement"]] == [
        (0, "n1", 30), (1, "n3", 60)]
    assert project["spec"]["training"]["learners"] == 2
    lines = summary(alice.request("GET", f"projects/{project['id']}"))
    assert "  learner 0 on node n1 (cluster local): 30 rows" in lines
    one = submit(alice, learners=1, min_available_learners=1)
    assert [p["node"] for p in one["placement"]] == ["n3"]  # the most rows


def test_too_few_nodes_is_422_naming_tags_and_nodes(two_of_three: None,
                                                     alice: ApiClient, bob: ApiClient) -> None:
    with pytest.raises(ApiError) as info:
        submit(alice, learners=3)
    assert info.value.details["status"] == 422
    assert "['digits']" in info.value.message and "n1 (online), n3 (online)" in \
        info.value.message
    # bob has no nodes at all: alice's data is not his
    with pytest.raises(ApiError, match="holding them: none") as info:
        submit(bob)
    assert info.value.details["status"] == 422


def test_hierarchical_projects_group_nodes_by_cluster(start_node: StartNode, alice: ApiClient,
                                                      tmp_path: Path) -> None:
    nodes = (("a1", "lab-a"), ("a2", "lab-a"), ("b1", "lab-b"))
    for name, cluster in nodes:
        start_node(name, cluster)
    wait_for(lambda: all(n["location"] for n in alice.request("GET", "nodes")["items"]),
             timeout=10)
    for name, _ in nodes:
        data_cli.push(alice, name, "digits",
                      write_csv(tmp_path / f"{name}.csv", [(i, 0.1, i % 2) for i in range(20)]))
    wait_for(lambda: sum(len(n["datasets"]) for n in alice.request("GET", "nodes")["items"])
             == 3, timeout=10)
    project = submit(alice, mode="hierarchical", cycles=1)
    pid = project["id"]
    assert [(p["node"], p["aggregator"]) for p in project["placement"]] == [
        ("a1", f"{pid}-cluster-aggregator-0"), ("a2", f"{pid}-cluster-aggregator-0"),
        ("b1", f"{pid}-cluster-aggregator-1")]
    training = project["spec"]["training"]
    assert (training["learners"], training["min_available_learners"]) == (2, 1)
    lines = summary(alice.request("GET", f"projects/{pid}"))
    grouped = [f"  cluster lab-a: aggregator {pid}-cluster-aggregator-0, 2 learner(s)",
               "    learner 0 on node a1 (cluster lab-a): 20 rows",
               "    learner 1 on node a2 (cluster lab-a): 20 rows",
               f"  cluster lab-b: aggregator {pid}-cluster-aggregator-1, 1 learner(s)",
               "    learner 2 on node b1 (cluster lab-b): 20 rows"]
    start = lines.index(grouped[0])
    assert lines[start:start + len(grouped)] == grouped, lines
    # two learners in every cluster: lab-b has one node
    with pytest.raises(ApiError, match="cluster lab-b: ") as info:
        submit(alice, mode="hierarchical", cycles=1, min_available_learners=2, learners=2)
    assert info.value.details["status"] == 422


def submit_mock(client: ApiClient, **training: object) -> dict[str, Any]:
    spec = {"mock_data": {"partitioner": "iid"}, "training": {"rounds": 1, **training}}
    return dict(client.request("POST", "projects", json={"spec": spec, "repository": REPO}))


def test_mock_data_goes_to_the_owners_online_nodes(start_node: StartNode, alice: ApiClient,
                                                   bob: ApiClient) -> None:
    for name, cluster in (("m1", "lab-a"), ("m2", "lab-b"), ("m3", "lab-a")):
        start_node(name, cluster)
    wait_for(lambda: all(n["location"] for n in alice.request("GET", "nodes")["items"]),
             timeout=10)
    project = submit_mock(alice, learners=2)
    # the first learners' count of nodes in name order, before any data is there
    assert [(p["learner"], p["node"], p["rows"], p["label_histogram"])
            for p in project["placement"]] == [(0, "m1", 0, {}), (1, "m2", 0, {})]
    assert "secrets" not in project and "token" not in str(project)
    # hierarchical: that many per cluster
    hier = submit_mock(alice, mode="hierarchical", cycles=1, learners=1)
    assert [(p["node"], p["cluster"]) for p in hier["placement"]] == [
        ("m1", "lab-a"), ("m2", "lab-b")]
    # more learners than online nodes: a 422 naming the nodes and what to do
    with pytest.raises(ApiError) as info:
        submit_mock(alice, learners=4)
    assert info.value.details["status"] == 422
    assert "need 4 online node(s)" in info.value.message
    assert "m3 (online, cluster lab-a)" in info.value.message
    assert "flops up --nodes N" in info.value.message
    # bob has no nodes (alice's are not his): there is no project-wide data server to fall
    # back to, so a 422 says that he has none and how to start some
    with pytest.raises(ApiError) as info:
        submit_mock(bob, learners=2)
    assert info.value.details["status"] == 422
    assert "your nodes: none" in info.value.message and "m1" not in info.value.message
    assert bob.request("GET", "projects")["items"] == []
