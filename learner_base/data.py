"""Read this learner's data from its node's ML data server.

A repository's ``ModelManager.set_model_data`` calls :func:`load_data`::

    data = load_data(context)
    train, test = data.train_test()
    x_train, y_train = train.to_numpy()

The data arrives as numpy columns (:mod:`flops_dataplane.flight_reader`): a learner needs no
pyarrow (150 MB of its image). :meth:`TaggedData.to_arrow` and :meth:`TaggedData.to_pandas`
convert for code that wants a table; the image build keeps pyarrow or pandas when the
repository calls them (``image_builder.role_env.IMPLIED_IMPORTS``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flops_dataplane.arrow_ipc import ArrowField, UnsupportedArrowError
from flops_dataplane.errors import NoDataError, SchemaMismatchError
from flops_dataplane.flight_reader import DEFAULT_TIMEOUT_S, FlightReader
from flops_dataplane.protocol import SPLIT_COLUMN
from learner_base.model_manager import LearnerContext

__all__ = ["NoDataError", "SchemaMismatchError", "TaggedData", "UnsupportedArrowError",
           "load_data"]


def _require(module: str, method: str) -> Any:
    """Import ``module`` for ``method``, or say what to add to the repository."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{method} needs {module}, which this learner's environment does "
                          f"not have: add {module} to the repository's requirements.txt"
                          ) from None


@dataclasses.dataclass(frozen=True)
class TaggedData:
    """The data read for a learner's tags.

    Attributes
    ----------
    columns
        Column name -> array, all data sets' rows in order (numbers as numeric arrays, strings
        as object arrays, fixed-size lists as 2-D arrays; see :mod:`flops_dataplane.arrow_ipc`).
    tags
        The tags that were read.
    server
        The data server it came from.
    datasets
        Ids of the data sets read, in order.
    schema
        The Arrow fields the columns were decoded from.
    """

    columns: Mapping[str, NDArray[Any]]
    tags: tuple[str, ...] = ()
    server: str = ""
    datasets: tuple[str, ...] = ()
    schema: tuple[ArrowField, ...] = ()

    @property
    def column_names(self) -> list[str]:
        """The column names, in order."""
        return list(self.columns)

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def to_pandas(self) -> Any:
        """Return the data as a ``pandas.DataFrame``.

        Raises
        ------
        ImportError
            If pandas is not installed: learner images carry it only when the repository
            declares or imports it (or calls ``to_pandas``, which the image build detects).
        """
        return _require("pandas", "to_pandas").DataFrame(self._one_dimensional())

    def to_arrow(self) -> Any:
        """Return the data as a ``pyarrow.Table``.

        Raises
        ------
        ImportError
            If pyarrow is not installed (as :meth:`to_pandas` for pandas).
        """
        return _require("pyarrow", "to_arrow").table(self._one_dimensional())

    def _one_dimensional(self) -> dict[str, Any]:
        """The columns, a 2-D one (a fixed-size list) as one array per row."""
        return {name: list(values) if values.ndim > 1 else values
                for name, values in self.columns.items()}

    def feature_columns(self, label_column: str = "label") -> list[str]:
        """Return every column except the label and the ``split`` column."""
        return [c for c in self.columns if c not in (label_column, SPLIT_COLUMN)]

    def to_numpy(
        self,
        feature_columns: Sequence[str] | None = None,
        label_column: str | None = "label",
    ) -> tuple[NDArray[Any], NDArray[Any] | None]:
        """Return ``(features, labels)``; features are a 2-D float array.

        Parameters
        ----------
        feature_columns
            Columns to use as features (default: all but the label and ``split`` columns);
            a fixed-size list column contributes one feature per element.
        label_column
            The label column, or ``None`` to return no labels.
        """
        columns = list(feature_columns or self.feature_columns(label_column or "label"))
        missing = [c for c in [*columns, label_column] if c and c not in self.columns]
        if missing:
            raise KeyError(f"columns {missing} not in the data (have {self.column_names})")
        if columns:
            features = np.column_stack([self.columns[c] for c in columns]).astype(
                np.float64, copy=False)
        else:
            features = np.empty((self.num_rows, 0))
        labels = None if label_column is None else self.columns[label_column]
        return features, labels

    def _rows(self, index: NDArray[Any]) -> TaggedData:
        return dataclasses.replace(
            self, columns={name: values[index] for name, values in self.columns.items()})

    def split(self, name: str) -> TaggedData:
        """Return the rows whose ``split`` column equals ``name``.

        Raises
        ------
        KeyError
            If the data has no ``split`` column.
        """
        if SPLIT_COLUMN not in self.columns:
            raise KeyError(f"the data has no {SPLIT_COLUMN!r} column; use train_test(fraction)")
        return self._rows(self.columns[SPLIT_COLUMN] == name)

    def train_test(
        self, test_fraction: float = 0.2, *, seed: int = 0
    ) -> tuple[TaggedData, TaggedData]:
        """Return ``(train, test)``: by the ``split`` column if present, else a seeded split."""
        if SPLIT_COLUMN in self.columns:
            return self.split("train"), self.split("test")
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.num_rows)
        n_test = round(test_fraction * self.num_rows)
        return self._rows(np.sort(order[n_test:])), self._rows(np.sort(order[:n_test]))


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
    UnsupportedArrowError
        If a column has a type the built-in reader does not decode (the message says what
        to do).
    flops_dataplane.errors.DataPlaneError
        If the server cannot be reached or refuses the token.
    """
    tags = list(context.data_tags)
    server = context.data_server
    if not server or not tags:
        raise NoDataError(f"no data for tags {tags} on {server or '<no data server configured>'}")
    with FlightReader(server, token, timeout_s=timeout_s) as client:
        manifests = client.list(tags)
        if partition is not None:
            manifests = [
                m for m in manifests if m.get("metadata", {}).get("partition") == str(partition)
            ]
        if not manifests:
            where = f"{server} (partition {partition})" if partition is not None else server
            raise NoDataError(f"no data for tags {tags} on {where}")
        schema, columns = client.read_columns(manifests)
    return TaggedData(
        columns=columns,
        schema=schema,
        tags=tuple(tags),
        server=server,
        datasets=tuple(m["id"] for m in manifests),
    )
