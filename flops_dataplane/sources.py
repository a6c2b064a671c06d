"""Data sources of the mock data provider; nothing is downloaded unless asked for.

A source spec is one of:

``sklearn:<name>`` (or just ``<name>``)
    A data set bundled with scikit-learn: ``digits``, ``iris``, ``wine``, ``breast_cancer``.
    Columns ``x0``..``x<n-1>`` (float64) and ``label`` (int64).
``file:<path>``
    A local ``.csv`` or ``.parquet`` file, used as is.
``hf:<name>[:<split>]``
    A Hugging Face data set (split ``train`` by default). Needs the optional ``datasets``
    package, imported only here, and network access to the hub (or its local cache).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flops_contracts.spec import MOCK_DATASETS
from flops_dataplane.errors import SourceError

SKLEARN_DATASETS = MOCK_DATASETS


def sklearn_table(name: str) -> pa.Table:
    """Return a scikit-learn bundled data set as a table of features and ``label``."""
    if name not in SKLEARN_DATASETS:
        raise SourceError(f"unknown scikit-learn data set {name!r}; use one of {SKLEARN_DATASETS}")
    from sklearn import datasets

    bunch: Any = getattr(datasets, f"load_{name}")()
    features = np.asarray(bunch.data, dtype=np.float64)
    columns: dict[str, Any] = {f"x{i}": features[:, i] for i in range(features.shape[1])}
    columns["label"] = np.asarray(bunch.target, dtype=np.int64)
    return pa.table(columns)


def file_table(path: str) -> pa.Table:
    """Read a local CSV or Parquet file."""
    source = Path(path)
    if not source.is_file():
        raise SourceError(f"data file {path!r} does not exist")
    if source.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(source)
    if source.suffix == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(source)
    raise SourceError(f"data file {path!r}: use a .csv or .parquet file")


def huggingface_table(name: str, split: str = "train") -> pa.Table:
    """Load a Hugging Face data set split via the optional ``datasets`` package."""
    try:
        hf: Any = importlib.import_module("datasets")
    except ImportError:
        raise SourceError(
            f"data set 'hf:{name}' needs the optional package 'datasets' "
            "(pip install datasets) and access to the Hugging Face hub or its cache"
        ) from None
    try:
        loaded: Any = hf.load_dataset(name, split=split)
    except Exception as exc:  # noqa: BLE001 - any failure of the hub or the loader
        raise SourceError(f"cannot load Hugging Face data set {name!r}: {exc}") from None
    table: pa.Table = loaded.data.table
    return table


def load_source(spec: str) -> pa.Table:
    """Load the table named by a source ``spec`` (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    if not rest:
        kind, rest = "sklearn", spec
    if kind == "sklearn":
        return sklearn_table(rest)
    if kind == "file":
        return file_table(rest)
    if kind == "hf":
        name, _, split = rest.partition(":")
        return huggingface_table(name, split or "train")
    raise SourceError(f"unknown data source {spec!r}; use sklearn:<name>, file:<path> or hf:<name>")
