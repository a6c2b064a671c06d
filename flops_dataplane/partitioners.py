"""Deterministic partitioning of a labelled data set into federated partitions.

Every partitioner is a pure function of the labels, the partition count and a seed, returns one
sorted index array per partition, and guarantees that every partition is non-empty (it raises
``ValueError`` when there are fewer samples than partitions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

IndexArray = NDArray[np.int64]
Partitioner = Callable[..., list[IndexArray]]


def _check(n_samples: int, partitions: int) -> None:
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if n_samples < partitions:
        raise ValueError(f"cannot split {n_samples} samples into {partitions} non-empty partitions")


def _finish(parts: list[list[NDArray[Any]]], rng: np.random.Generator) -> list[IndexArray]:
    """Concatenate, make every partition non-empty by moving samples from the largest, sort."""
    out = [
        np.concatenate(p).astype(np.int64) if p else np.empty(0, dtype=np.int64) for p in parts
    ]
    for i, part in enumerate(out):
        if part.size:
            continue
        donor = int(np.argmax([p.size for p in out]))
        pick = int(rng.integers(out[donor].size))
        out[i] = out[donor][pick : pick + 1]
        out[donor] = np.delete(out[donor], pick)
    return [np.sort(p) for p in out]


def iid(labels: NDArray[Any], partitions: int, *, seed: int = 0) -> list[IndexArray]:
    """Shuffle and split into ``partitions`` nearly equal parts (IID)."""
    _check(len(labels), partitions)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels)).astype(np.int64)
    return [np.sort(p) for p in np.array_split(order, partitions)]


def label_skew(
    labels: NDArray[Any], partitions: int, *, labels_per_partition: int = 2, seed: int = 0
) -> list[IndexArray]:
    """Give each partition samples of only ``labels_per_partition`` labels.

    Labels are dealt round-robin from a shuffled list, so every label is used when
    ``partitions * labels_per_partition >= number of labels``; each label's samples are split
    evenly among the partitions that hold it.
    """
    _check(len(labels), partitions)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    k = max(1, min(labels_per_partition, len(classes)))
    deck = rng.permutation(classes)
    owners: dict[Any, list[int]] = {c: [] for c in classes.tolist()}
    position = 0
    for part in range(partitions):
        chosen: list[Any] = []
        while len(chosen) < k:
            label = deck[position % len(deck)].item()
            position += 1
            if label not in chosen:
                chosen.append(label)
        for label in chosen:
            owners[label].append(part)
    parts: list[list[NDArray[Any]]] = [[] for _ in range(partitions)]
    for label, holders in owners.items():
        if not holders:
            continue
        members = rng.permutation(np.flatnonzero(labels == label))
        for holder, chunk in zip(holders, np.array_split(members, len(holders)), strict=True):
            parts[holder].append(chunk)
    return _finish(parts, rng)


def dirichlet(
    labels: NDArray[Any],
    partitions: int,
    *,
    alpha: float = 0.5,
    seed: int = 0,
    min_size: int = 1,
    max_attempts: int = 100,
) -> list[IndexArray]:
    """Split each label's samples by proportions drawn from Dirichlet(``alpha``).

    Small ``alpha`` gives strongly skewed label distributions. Draws are repeated (up to
    ``max_attempts``) until every partition holds at least ``min_size`` samples; after that, the
    last draw is fixed up by moving single samples into empty partitions.
    """
    _check(len(labels), partitions)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    parts: list[list[NDArray[Any]]] = []
    for _ in range(max_attempts):
        parts = [[] for _ in range(partitions)]
        for label in classes:
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(partitions, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for part, chunk in enumerate(np.split(members, cuts)):
                parts[part].append(chunk)
        if min(sum(c.size for c in p) for p in parts) >= min_size:
            break
    return _finish(parts, rng)


def split_train_test(
    indices: IndexArray, *, test_fraction: float, seed: int
) -> tuple[IndexArray, IndexArray]:
    """Split one partition's indices into train and held-out test indices.

    The test part gets ``round(test_fraction * n)`` samples, but the train part always keeps at
    least one sample.
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(indices)
    n_test = min(round(test_fraction * len(indices)), max(len(indices) - 1, 0))
    return np.sort(shuffled[n_test:]), np.sort(shuffled[:n_test])


HOLDOUT_SEED_OFFSET = 10_007


def holdout_split(n_samples: int, *, fraction: float, seed: int) -> tuple[IndexArray, IndexArray]:
    """Split row indices ``0..n_samples-1`` into (kept, held out from every learner).

    Deterministic for ``(n_samples, fraction, seed)``, so whoever knows them (a benchmark, the
    demo checking the served model) can rebuild the exact held-out set.
    """
    return split_train_test(
        np.arange(n_samples), test_fraction=fraction, seed=seed + HOLDOUT_SEED_OFFSET
    )


def label_histogram(labels: NDArray[Any]) -> dict[str, int]:
    """Return ``{label: count}`` (labels as strings, sorted) for reporting."""
    values, counts = np.unique(labels, return_counts=True)
    return {str(v): int(c) for v, c in zip(values.tolist(), counts.tolist(), strict=True)}


def total_variation(p: dict[str, int], q: dict[str, int]) -> float:
    """Return the total variation distance between two label histograms."""
    keys = set(p) | set(q)
    total_p, total_q = sum(p.values()) or 1, sum(q.values()) or 1
    return 0.5 * sum(abs(p.get(k, 0) / total_p - q.get(k, 0) / total_q) for k in keys)


PARTITIONERS: dict[str, Partitioner] = {
    "iid": iid,
    "label_skew": label_skew,
    "dirichlet": dirichlet,
}


def partition(
    name: str,
    labels: Sequence[Any] | NDArray[Any],
    partitions: int,
    *,
    seed: int = 0,
    alpha: float = 0.5,
    labels_per_partition: int = 2,
) -> list[IndexArray]:
    """Run the partitioner called ``name`` (``iid``, ``label_skew`` or ``dirichlet``)."""
    array = np.asarray(labels)
    if name == "iid":
        return iid(array, partitions, seed=seed)
    if name == "label_skew":
        return label_skew(array, partitions, labels_per_partition=labels_per_partition, seed=seed)
    if name == "dirichlet":
        return dirichlet(array, partitions, alpha=alpha, seed=seed)
    raise ValueError(f"unknown partitioner {name!r}; use one of {sorted(PARTITIONERS)}")
