"""A learner's data as a Hugging Face ``datasets.Dataset``, or a stand-in with its operations.

Repositories of the original FLOps received a ``datasets.Dataset`` (2.x) and used
``set_format``, column access (``ds["image"]``), ``train_test_split(test_size, seed)`` and
``with_transform``. :func:`to_dataset` returns a real ``datasets.Dataset`` when ``datasets`` 2.x
is installed, otherwise a :class:`ColumnDataset` that behaves like it for those operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flops_dataplane.protocol import SPLIT_COLUMN

Transform = Callable[[dict[str, list[Any]]], dict[str, Any]]
FORMATS = (None, "python", "numpy", "np", "torch", "pt", "arrow")


def table_columns(columns: Mapping[str, NDArray[Any]], *,
                  label_column: str = "label") -> dict[str, NDArray[Any]]:
    """Return ``{"image": features, "label": labels}`` from a learner's columns (pure).

    ``columns`` are :attr:`learner_base.data.TaggedData.columns`. ``image`` is the data's own
    ``image`` column if it has one, else every column except the label and the data plane's
    ``split`` column, stacked into one float array per row.
    """
    names = [n for n in columns if n != SPLIT_COLUMN]
    out: dict[str, NDArray[Any]] = {}
    if "image" in names:
        image = columns["image"]
        out["image"] = np.asarray(list(image)) if image.dtype == object else image
    else:
        features = [n for n in names if n != label_column]
        out["image"] = np.column_stack([columns[n] for n in features]).astype(
            np.float64, copy=False)
    if label_column in names:
        out["label"] = columns[label_column]
    return out


def to_dataset(columns: Mapping[str, NDArray[Any]]) -> Any:
    """Return a learner's ``columns`` as a ``datasets.Dataset`` or a :class:`ColumnDataset`.

    A ``datasets.Dataset`` is returned when ``datasets`` 2.x (the version the original FLOps
    used) is installed. From ``datasets`` 3 on, ``ds["image"]`` is a lazy column without
    ``reshape``, which original repositories call, so the stand-in is returned instead.
    """
    dataset = table_columns(columns)
    try:
        import datasets
    except ImportError:
        return ColumnDataset(dataset)
    if not str(datasets.__version__).startswith("2."):
        return ColumnDataset(dataset)
    return datasets.Dataset.from_dict({k: list(v) for k, v in dataset.items()})


class ColumnDataset:
    """Columns of equal length with the ``datasets.Dataset`` operations FLOps repositories use.

    Parameters
    ----------
    columns
        Column name -> array (first axis: rows).
    """

    def __init__(
        self,
        columns: dict[str, NDArray[Any]],
        *,
        format_type: str | None = None,
        transform: Transform | None = None,
    ) -> None:
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns have different lengths: {sorted(lengths)}")
        self._columns = {k: np.asarray(v) for k, v in columns.items()}
        self._format = format_type
        self._transform = transform

    def _copy(self, **changes: Any) -> ColumnDataset:
        values: dict[str, Any] = {"format_type": self._format, "transform": self._transform}
        values.update(changes)
        return ColumnDataset(self._columns, **values)

    @property
    def column_names(self) -> list[str]:
        """The column names."""
        return list(self._columns)

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return len(self)

    @property
    def format(self) -> dict[str, Any]:
        """The output format, as ``datasets`` reports it."""
        return {"type": self._format, "columns": self.column_names}

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()), ()))

    def __repr__(self) -> str:
        return f"ColumnDataset(features={self.column_names}, num_rows={len(self)})"

    def _formatted(self, values: NDArray[Any]) -> Any:
        if self._format in ("numpy", "np"):
            return values
        if self._format in ("torch", "pt"):
            import torch

            return torch.as_tensor(values)
        return values.tolist()

    def _batch(self, rows: NDArray[Any] | slice) -> dict[str, Any]:
        batch = {name: values[rows] for name, values in self._columns.items()}
        if self._transform is not None:
            return self._transform({name: v.tolist() for name, v in batch.items()})
        return {name: self._formatted(values) for name, values in batch.items()}

    def __getitem__(self, key: str | int | slice | Sequence[int]) -> Any:
        if isinstance(key, str):
            if self._transform is not None:
                return self._batch(slice(None))[key]
            return self._formatted(self._columns[key])
        if isinstance(key, int | np.integer):
            index = int(key)
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} rows")
            batch = self._batch(np.array([index % len(self)]))
            return {name: values[0] for name, values in batch.items()}
        if isinstance(key, slice):
            return self._batch(key)
        return self._batch(np.asarray(list(key), dtype=int))

    def __iter__(self) -> Any:
        for index in range(len(self)):
            yield self[index]

    def set_format(self, type: str | None = None, **kwargs: Any) -> None:
        """Return columns as ``numpy`` arrays, ``torch`` tensors or Python lists (``None``)."""
        if type not in FORMATS:
            raise ValueError(f"format {type!r} is not supported; use one of {FORMATS}")
        self._format = None if type == "arrow" else type
        self._transform = None

    def with_format(self, type: str | None = None, **kwargs: Any) -> ColumnDataset:
        """A copy with :meth:`set_format` applied."""
        copy = self._copy()
        copy.set_format(type)
        return copy

    def reset_format(self) -> None:
        """Back to Python lists, no transform."""
        self._format = None
        self._transform = None

    def set_transform(self, transform: Transform | None, **kwargs: Any) -> None:
        """Apply ``transform`` to each batch (a dict of lists) when rows are read."""
        self._transform = transform

    def with_transform(self, transform: Transform | None, **kwargs: Any) -> ColumnDataset:
        """A copy with :meth:`set_transform` applied."""
        return self._copy(transform=transform)

    def select(self, indices: Iterable[int]) -> ColumnDataset:
        """The rows at ``indices``, in that order."""
        order = np.asarray(list(indices), dtype=int)
        return ColumnDataset({k: v[order] for k, v in self._columns.items()},
                             format_type=self._format, transform=self._transform)

    def shuffle(self, seed: int | None = None, **kwargs: Any) -> ColumnDataset:
        """The rows in a random order (reproducible with ``seed``)."""
        return self.select(np.random.default_rng(seed).permutation(len(self)))

    def train_test_split(
        self,
        test_size: float | int | None = None,
        train_size: float | int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        **kwargs: Any,
    ) -> DatasetDict:
        """Split into ``{"train": ..., "test": ...}`` like ``datasets.Dataset.train_test_split``.

        Sizes are fractions (float) or row counts (int); the test size defaults to 0.25.
        """
        n = len(self)
        n_test, n_train = split_sizes(n, test_size=test_size, train_size=train_size)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        return DatasetDict(train=self.select(order[n_test:n_test + n_train]),
                           test=self.select(order[:n_test]))

    def to_dict(self) -> dict[str, list[Any]]:
        """The columns as Python lists."""
        return {k: v.tolist() for k, v in self._columns.items()}


def split_sizes(
    n: int, *, test_size: float | int | None, train_size: float | int | None
) -> tuple[int, int]:
    """Return ``(n_test, n_train)`` as ``datasets`` computes them (pure).

    Raises
    ------
    ValueError
        If the sizes do not fit into ``n`` rows or leave a part empty.
    """
    if test_size is None and train_size is None:
        test_size = 0.25
    n_test = None if test_size is None else (
        math.ceil(test_size * n) if isinstance(test_size, float) else int(test_size))
    n_train = None if train_size is None else (
        math.floor(train_size * n) if isinstance(train_size, float) else int(train_size))
    if n_test is None:
        n_test = n - (n_train or 0)
    if n_train is None:
        n_train = n - n_test
    if n_test <= 0 or n_train <= 0 or n_test + n_train > n:
        raise ValueError(f"cannot split {n} rows into {n_train} for training and {n_test} "
                         "for testing")
    return n_test, n_train


class DatasetDict(dict[str, ColumnDataset]):
    """Named splits (``train``, ``test``) with the per-split operations of ``datasets``."""

    def with_transform(self, transform: Transform | None, **kwargs: Any) -> DatasetDict:
        """Each split with ``transform``."""
        return DatasetDict({k: v.with_transform(transform) for k, v in self.items()})

    def with_format(self, type: str | None = None, **kwargs: Any) -> DatasetDict:
        """Each split in ``type`` format."""
        return DatasetDict({k: v.with_format(type) for k, v in self.items()})

    def set_format(self, type: str | None = None, **kwargs: Any) -> None:
        """Set each split's format."""
        for split in self.values():
            split.set_format(type)

    def set_transform(self, transform: Transform | None, **kwargs: Any) -> None:
        """Set each split's transform."""
        for split in self.values():
            split.set_transform(transform)
