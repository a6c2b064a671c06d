"""Placement by data (pure)."""

from __future__ import annotations

import pytest

from flops_manager.nodes.model import Node
from flops_manager.nodes.placement import (
    ClusterGroup,
    PlacementError,
    group_by_cluster,
    node_clusters,
    place_by_cluster,
    place_by_data,
)

NOW = 1000.0


def node(name: str, tags: dict[str, int], *, seen: float | None = NOW,
         cluster: str = "local") -> Node:
    datasets = tuple({"tag": t, "name": "d", "rows": r, "bytes": 1, "schema_fingerprint": "f"}
                     for t, r in tags.items())
    return Node(id=name, owner="alice", name=name, cluster=cluster, platform="linux/amd64",
                credential_digest="x", data_key="k", enrolled_at=0.0, last_seen=seen,
                interval_s=10.0, datasets=datasets)


NODES = [node("c", {"digits": 30}), node("a", {"digits": 10, "x": 5}),
         node("b", {"other": 99}), node("d", {"digits": 50}, seen=NOW - 100),
         node("e", {"digits": 70})]


def test_one_learner_per_online_node_holding_the_tags() -> None:
    placed = place_by_data(NODES, ["digits"], learners=None, min_available=2, now=NOW)
    assert [(p.learner, p.node, p.rows) for p in placed] == [(0, "a", 10), (1, "c", 30),
                                                              (2, "e", 70)]


def test_explicit_count_takes_the_nodes_with_most_rows() -> None:
    placed = place_by_data(NODES, ["digits"], learners=2, min_available=2, now=NOW)
    assert [p.node for p in placed] == ["c", "e"]


def test_every_tag_is_needed() -> None:
    placed = place_by_data(NODES, ["digits", "x"], learners=None, min_available=1, now=NOW)
    assert [p.node for p in placed] == ["a"]


def test_too_few_nodes_names_tags_and_holders() -> None:
    with pytest.raises(PlacementError) as info:
        place_by_data(NODES, ["digits"], learners=None, min_available=4, now=NOW)
    assert info.value.tags == ["digits"]
    assert info.value.holders == ["a", "c", "d", "e"]
    assert "d (offline)" in info.value.message and "held by 3 online" in info.value.message
    with pytest.raises(PlacementError, match="holding them: none"):
        place_by_data(NODES, ["nope"], learners=None, min_available=1, now=NOW)


CLUSTERED = [node("a1", {"digits": 10}, cluster="lab-a"),
             node("b1", {"digits": 20}, cluster="lab-b"),
             node("a2", {"digits": 30}, cluster="lab-a"), node("c1", {"other": 5}, cluster="lab-c"),
             node("b2", {"digits": 40}, cluster="lab-b", seen=NOW - 100)]


def test_hierarchical_placement_groups_learners_by_their_nodes_cluster() -> None:
    placed = place_by_cluster(CLUSTERED, ["digits"], learners=None, min_available=1,
                              clusters=None, now=NOW)
    # cluster by cluster in name order, consecutive learner numbers; lab-c holds no digits
    assert [(p.learner, p.node, p.cluster) for p in placed] == [
        (0, "a1", "lab-a"), (1, "a2", "lab-a"), (2, "b1", "lab-b")]
    assert group_by_cluster(placed) == [ClusterGroup(0, "lab-a", (0, 1)),
                                        ClusterGroup(1, "lab-b", (2,))]
    assert node_clusters([p.to_dict() for p in placed]) == ("lab-a", "lab-b")
    # a per-cluster count takes each cluster's nodes with the most rows
    capped = place_by_cluster(CLUSTERED, ["digits"], learners=1, min_available=1,
                              clusters=None, now=NOW)
    assert [(p.learner, p.node) for p in capped] == [(0, "a2"), (1, "b1")]
    named = place_by_cluster(CLUSTERED, ["digits"], learners=None, min_available=1,
                             clusters=["lab-b"], now=NOW)
    assert [(p.learner, p.node) for p in named] == [(0, "b1")]


def test_hierarchical_placement_needs_the_minimum_in_every_cluster() -> None:
    with pytest.raises(PlacementError, match=r"cluster lab-b: .*b2 \(offline\)"):
        place_by_cluster(CLUSTERED, ["digits"], learners=None, min_available=2,
                         clusters=None, now=NOW)
    with pytest.raises(PlacementError, match=r"cluster\(s\) \['lab-c'\]"):
        place_by_cluster(CLUSTERED, ["digits"], learners=None, min_available=1,
                         clusters=["lab-a", "lab-c"], now=NOW)
    with pytest.raises(PlacementError, match="holding them: none"):
        place_by_cluster(CLUSTERED, ["nope"], learners=None, min_available=1,
                         clusters=None, now=NOW)
