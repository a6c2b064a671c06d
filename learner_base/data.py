"""Read this learner's data from its node's ML data server.

A repository's ``ModelManager.set_model_data`` calls :func:`load_data`::

    data = load_data(context)
    train, test = data.train_test()
    x_train, y_train = train.to_numpy()

This is the only ``learner_base`` module that imports pyarrow; import it only where needed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from flops_dataplane.client import DEFAULT_TIMEOUT_S, DataClient
from flops_dataplane.errors import NoDataError, SchemaMismatchError
from flops_dataplane.protocol import SPLIT_COLUMN
from learner_base.model_manager import LearnerContext

__all__ = ["NoDataError", "SchemaMismatchError", "TaggedData", "load_data"]


@dataclasses.dataclass(frozen=True)
class TaggedData:
    """The data read for a learner's tags.

    Attributes
    ----------
    table
        All matching data sets concatenated (one schema).
    tags
        The tags that were read.
    server
        The data server it came from.
    datasets
        Ids of the data sets read, in order.
    """

    table: pa.Table
    tags: tuple[str, ...] = ()
    server: str = ""
    datasets: tuple[str, ...] = ()

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        rows: int = self.table.num_rows
        return rows

    def to_pandas(self) -> Any:
        """Return the table as a ``pandas.DataFrame``.

        Raises
        ------
        ImportError
            If pandas is not installed: learner images carry it only when the repository
            declares or imports it (or calls ``to_pandas``, which the image build detects).
        """
        if importlib.util.find_spec("pandas") is None:
            raise ImportError("to_pandas needs pandas, which this learner's environment does "
                              "not have: add pandas to the repository's requirements.txt")
        return self.table.to_pandas()

    def feature_columns(self, label_column: str = "label") -> list[str]:
        """Return every column except the label and the ``split`` column."""
        names: list[str] = self.table.column_names
        return [c for c in names if c not in (label_column, SPLIT_COLUMN)]

    def to_numpy(
        self,
        feature_columns: Sequence[str] | None = None,
        label_column: str | None = "label",
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        """Return ``(features, labels)``; features are a 2-D float array.

        Parameters
        ----------
        feature_columns
            Columns to use as features (default: all but the label and ``split`` columns).
        label_column
            The label column, or ``None`` to return no labels.
        """
        columns = list(feature_columns or self.feature_columns(label_column or "label"))
        missing = [c for c in [*columns, label_column] if c and c not in self.table.column_names]
        if missing:
            raise KeyError(f"columns {missing} not in the data (have {self.table.column_names})")
        if columns:
            features = np.column_stack(
                [self.table.column(c).to_numpy(zero_copy_only=False) for c in columns]
            ).astype(np.float64, copy=False)
        else:
            features = np.empty((self.num_rows, 0))
        labels = (
            None if label_column is None
            else self.table.column(label_column).to_numpy(zero_copy_only=False)
        )
        return features, labels

    def split(self, name: str) -> TaggedData:
        """Return the rows whose ``split`` column equals ``name``.

        Raises
        ------
        KeyError
            If the data has no ``split`` column.
        """
        if SPLIT_COLUMN not in self.table.column_names:
            raise KeyError(f"the data has no {SPLIT_COLUMN!r} column; use train_test(fraction)")
        mask = pc.equal(self.table.column(SPLIT_COLUMN), name)
        return dataclasses.replace(self, table=self.table.filter(mask))

    def train_test(
        self, test_fraction: float = 0.2, *, seed: int = 0
    ) -> tuple[TaggedData, TaggedData]:
        """Return ``(train, test)``: by the ``split`` column if present, else a seeded split."""
        if SPLIT_COLUMN in self.table.column_names:
            return self.split("train"), self.split("test")
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.num_rows)
        n_test = round(test_fraction * self.num_rows)
        test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
        return (
            dataclasses.replace(self, table=self.table.take(pa.array(train_idx))),
            dataclasses.replace(self, table=self.table.take(pa.array(test_idx))),
        )


def load_data(
    context: LearnerContext,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
    partition: int | None = None,
) -> TaggedData:
    """Read the data sets matching ``context.data_tags`` from ``context.data_server``.

    Parameters
    ----------
    context
        The learner's context (tags and data server location).
    timeout_s
        Deadline of each call to the data server.
    token
        Data server token (default: ``FLOPS_DATA_TOKEN``).
    partition
        Only read data sets whose manifest metadata ``partition`` equals this (a server filled
        by :mod:`flops_dataplane.mock_provider` records it); default ``None``: read all.

    Raises
    ------
    NoDataError
        ``"no data for tags [...] on <server>"`` if nothing matches (or no server is set).
    SchemaMismatchError
        If the matching data sets have different schemas (both are named).
    flops_dataplane.errors.DataPlaneError
        If the server cannot be reached or refuses the token.
    """
    tags = list(context.data_tags)
    server = context.data_server
    if not server or not tags:
        raise NoDataError(f"no data for tags {tags} on {server or '<no data server configured>'}")
    with DataClient(server, token, timeout_s=timeout_s) as client:
        manifests = client.list(tags)
        if partition is not None:
            manifests = [
                m for m in manifests if m.get("metadata", {}).get("partition") == str(partition)
            ]
        if not manifests:
            where = f"{server} (partition {partition})" if partition is not None else server
            raise NoDataError(f"no data for tags {tags} on {where}")
        table = client.read_datasets(manifests)
    return TaggedData(
        table=table,
        tags=tuple(tags),
        server=server,
        datasets=tuple(m["id"] for m in manifests),
    )
