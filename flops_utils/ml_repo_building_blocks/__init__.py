"""``load_dataset()``: this learner's data from its node's ML data server."""

from __future__ import annotations

from typing import Any

from flops_utils.dataset import to_dataset


def load_dataset() -> Any:
    """Return this learner's data as one data set with ``image`` and ``label`` columns.

    Reads the data sets matching the project's data tags from the learner's data server
    (:func:`learner_base.data.load_data` with the learner's published context). ``image`` holds
    each row's features as one array. The result is a ``datasets.Dataset`` when ``datasets``
    2.x is installed, otherwise a :class:`flops_utils.dataset.ColumnDataset` with the same
    operations (``set_format``, ``["image"]``, ``train_test_split``,
    ``with_transform``, ...).

    Raises
    ------
    flops_contracts.errors.FlopsError
        Outside a learner's ``set_model_data``, or when no data matches the tags.
    """
    from learner_base import active_context
    from learner_base.data import load_data

    return to_dataset(load_data(active_context.current()).columns)


__all__ = ["load_dataset"]
