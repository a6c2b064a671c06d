"""This learner's share of the digits data set."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from learner_base import LearnerContext


def load_partition(
    context: LearnerContext,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test) of this learner's partition.

    With a data server and data tags (``flops train-local --data ...`` or a FLOPS project with
    ``data_tags``), the learner trains on what its node's ML data server holds under those tags
    (columns ``x0``..``x63`` and ``label``; the ``split`` column says train or test). Otherwise
    a fixed 20 % of the data set is held out from every learner (for checking the served model)
    and the rest is split 80/20 into training and test data and cut into ``learner_count``
    shards by learner index.
    """
    if context.data_server and context.data_tags:
        from learner_base.data import load_data

        train, test = load_data(context).train_test(seed=context.seed)
        x_train, y_train = train.to_numpy()
        x_test, y_test = test.to_numpy()
        return x_train / 16.0, y_train, x_test / 16.0, y_test
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_pool, _, y_pool, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    order = np.random.default_rng(0).permutation(len(x_pool))  # same order on every learner
    shard = np.array_split(order, context.learner_count)[context.learner_index]
    x_shard, y_shard = x_pool[shard], y_pool[shard]
    x_train, x_test, y_train, y_test = train_test_split(
        x_shard, y_shard, test_size=0.2, random_state=context.seed
    )
    return x_train, y_train, x_test, y_test
