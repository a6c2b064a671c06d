from __future__ import annotations

import numpy as np
import pytest

from flops_dataplane.partitioners import (
    dirichlet,
    iid,
    label_histogram,
    label_skew,
    partition,
    split_train_test,
    total_variation,
)
from flops_dataplane.sources import sklearn_table

LABELS = np.repeat(np.arange(10), 500)  # 5,000 samples, 10 balanced classes


def mean_tv(parts: list[np.ndarray], labels: np.ndarray) -> float:
    overall = label_histogram(labels)
    return float(np.mean([total_variation(label_histogram(labels[p]), overall) for p in parts]))


def assert_is_partition(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert all(p.size > 0 for p in parts)
    assert np.array_equal(np.sort(joined), np.arange(n))


def test_iid_histograms_close_to_global() -> None:
    parts = iid(LABELS, 5, seed=1)
    assert_is_partition(parts, LABELS.size)
    overall = label_histogram(LABELS)
    assert max(total_variation(label_histogram(LABELS[p]), overall) for p in parts) < 0.1
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1


def test_dirichlet_small_alpha_is_skewed() -> None:
    parts = dirichlet(LABELS, 5, alpha=0.1, seed=1)
    assert_is_partition(parts, LABELS.size)
    assert mean_tv(parts, LABELS) > 0.3
    assert mean_tv(dirichlet(LABELS, 5, alpha=100.0, seed=1), LABELS) < 0.1


def test_label_skew_gives_k_labels_per_partition() -> None:
    parts = label_skew(LABELS, 5, labels_per_partition=2, seed=3)
    assert_is_partition(parts, LABELS.size)
    assert [len(np.unique(LABELS[p])) for p in parts] == [2] * 5
    assert mean_tv(parts, LABELS) > 0.5


@pytest.mark.parametrize("name", ["iid", "label_skew", "dirichlet"])
def test_same_seed_same_partitions_different_seed_differs(name: str) -> None:
    a = partition(name, LABELS, 4, seed=7, alpha=0.5)
    b = partition(name, LABELS, 4, seed=7, alpha=0.5)
    c = partition(name, LABELS, 4, seed=8, alpha=0.5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_dirichlet_edge_cases_never_leave_a_partition_empty() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])  # 6 samples, 6 partitions, very small alpha
    for seed in range(20):
        parts = dirichlet(labels, 6, alpha=0.01, seed=seed, max_attempts=2)
        assert_is_partition(parts, labels.size)
        assert all(p.size == 1 for p in parts)
    parts = label_skew(np.array([0, 0, 0, 0, 1]), 4, labels_per_partition=1, seed=0)
    assert_is_partition(parts, 5)
    with pytest.raises(ValueError, match="cannot split 3 samples into 4"):
        dirichlet(np.array([0, 1, 2]), 4)
    with pytest.raises(ValueError, match="unknown partitioner"):
        partition("random", LABELS, 2)


def test_train_test_split() -> None:
    indices = np.arange(100, 200)
    train, test = split_train_test(indices, test_fraction=0.25, seed=0)
    assert (train.size, test.size) == (75, 25)
    assert np.array_equal(np.sort(np.concatenate([train, test])), indices)
    one_train, one_test = split_train_test(np.array([5]), test_fraction=0.5, seed=0)
    assert (one_train.tolist(), one_test.tolist()) == ([5], [])


def test_sklearn_digits_source_is_real_data() -> None:
    table = sklearn_table("digits")
    assert table.num_rows == 1797
    assert table.column_names[:2] == ["x0", "x1"] and table.column_names[-1] == "label"
    assert len(table.column_names) == 65
    assert sorted(set(table.column("label").to_pylist())) == list(range(10))
