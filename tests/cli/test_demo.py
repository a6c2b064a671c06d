"""``flops demo``'s data on simulated nodes: the partitions it pushes and what it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from sklearn.datasets import load_digits

from flops_contracts.errors import FlopsError
from flops_manager.cli import demo
from flops_manager.cli.client import ApiClient


def test_partitions_cover_every_digit_but_the_held_out_ones() -> None:
    tables = demo.demo_partitions(3)
    _, y = load_digits(return_X_y=True)
    held_x, _ = demo.holdout_digits()
    assert len(tables) == 3
    assert sum(t.num_rows for t in tables) == len(y) - len(held_x)
    for table in tables:
        assert {demo.LABEL, "split"} <= set(table.column_names)
        assert set(table.column("split").to_pylist()) == {"train", "test"}
    # Dirichlet(0.5): the nodes' label mixes differ (non-IID)
    tops = [max(set(t.column(demo.LABEL).to_pylist()), key=t.column(demo.LABEL).to_pylist().count)
            for t in tables]
    assert len(set(tops)) > 1, tops


def test_node_summary_names_the_most_frequent_digits() -> None:
    line = demo.node_summary("node-2", {"rows": 40, "label_histogram": {"1": 5, "7": 20, "3": 15,
                                                                        "0": 0}})
    assert line == "node-2: 40 digits, mostly 7 (20), 3 (15), 1 (5)"
    assert demo.node_summary("node-1", {"rows": 3}) == "node-1: 3 rows"


def test_too_few_nodes_for_the_learners_is_a_clear_error(tmp_path: Path) -> None:
    unused = cast(ApiClient, object())
    with pytest.raises(FlopsError, match=r"2 nodes for 4 learners: run 'flops down'"):
        demo.place_demo_data(unused, ["node-1", "node-2"], 4, tmp_path)


def test_the_demo_project_trains_on_the_nodes_data_tag() -> None:
    request: dict[str, Any] = demo.demo_request("file:///r", "c" * 40, rounds=2, learners=3)
    spec = request["spec"]
    assert spec["data_tags"] == [demo.DATA_TAG] and "mock_data" not in spec
    assert spec["training"] == {"rounds": 2, "learners": 3, "min_available_learners": 3}
