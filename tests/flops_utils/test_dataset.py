"""The ``datasets``-style data set original FLOps repositories receive from ``load_dataset()``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flops_utils.dataset import ColumnDataset, split_sizes, table_columns, to_dataset


def digits_like(rows: int = 10) -> dict[str, Any]:
    """Columns as a learner's ``load_data`` returns them (``TaggedData.columns``)."""
    columns: dict[str, Any] = {f"x{i}": np.arange(rows, dtype=float) + i for i in range(4)}
    columns["label"] = np.arange(rows) % 3
    columns["split"] = np.array(["train"] * rows, dtype=object)
    return columns


def test_features_become_one_image_column_and_split_is_dropped() -> None:
    columns = table_columns(digits_like())
    assert sorted(columns) == ["image", "label"]
    assert columns["image"].shape == (10, 4) and columns["image"][2].tolist() == [2, 3, 4, 5]


def test_numpy_format_column_access_and_train_test_split() -> None:
    dataset = ColumnDataset(table_columns(digits_like()))
    assert isinstance(dataset["label"], list)  # python format by default, as in datasets
    dataset.set_format("numpy")
    assert dataset["image"].reshape((len(dataset), -1)).shape == (10, 4)
    split = dataset.train_test_split(test_size=0.2, seed=42)
    train, test = split["train"], split["test"]
    assert (len(train), len(test)) == (8, 2)
    assert isinstance(test["image"], np.ndarray)
    seen = sorted(train["image"][:, 0].tolist() + test["image"][:, 0].tolist())
    assert seen == list(range(10))  # a partition of the rows
    again = dataset.train_test_split(test_size=0.2, seed=42)["test"]
    assert (again["label"] == test["label"]).all()


def test_with_transform_applies_to_batches_and_rows() -> None:
    def double(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"image": [[2 * v for v in row] for row in batch["image"]],
                "label": batch["label"]}

    splits = ColumnDataset(table_columns(digits_like())).train_test_split(
        test_size=2, shuffle=False).with_transform(double)
    assert splits["test"][0] == {"image": [0.0, 2.0, 4.0, 6.0], "label": 0}
    assert splits["train"][0:2]["image"][1] == [6.0, 8.0, 10.0, 12.0]  # row 3
    assert len(list(splits["train"])) == 8


def test_torch_dataloader_reads_rows() -> None:
    torch = pytest.importorskip("torch")
    dataset = ColumnDataset(table_columns(digits_like())).with_format("torch")
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 4) and batch["label"].tolist() == [0, 1, 2, 0]


def test_split_sizes_follow_datasets() -> None:
    assert split_sizes(10, test_size=0.25, train_size=None) == (3, 7)
    assert split_sizes(10, test_size=None, train_size=None) == (3, 7)
    assert split_sizes(10, test_size=2, train_size=5) == (2, 5)
    with pytest.raises(ValueError, match="cannot split 10 rows"):
        split_sizes(10, test_size=0.0, train_size=None)


def test_to_dataset_is_a_column_dataset_unless_datasets_2_is_installed() -> None:
    try:
        import datasets
    except ImportError:
        assert isinstance(to_dataset(digits_like()), ColumnDataset)
        return
    dataset = to_dataset(digits_like())
    if datasets.__version__.startswith("2."):
        assert isinstance(dataset, datasets.Dataset)
    else:  # datasets 3+: ds["image"] is a lazy column without reshape
        assert isinstance(dataset, ColumnDataset)
    dataset.set_format("numpy")
    assert dataset["image"].reshape((len(dataset), -1)).shape == (10, 4)
