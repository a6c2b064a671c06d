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
