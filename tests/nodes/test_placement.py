"""Placement by data (pure)."""

from __future__ import annotations

import pytest

from flops_manager.nodes.model import Node
from flops_manager.nodes.placement import PlacementError, place_by_data

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
