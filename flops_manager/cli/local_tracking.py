"""The MLflow store of a local run: a copy of a pre-migrated, empty SQLite schema.

Creating MLflow's SQLite schema runs every Alembic migration, about 2-3 s on a 2-core machine,
which ``train-local`` would otherwise pay in every run. The empty schema is built once per
MLflow version into a cache directory and copied into each new work directory (milliseconds);
the aggregator then opens a store that only needs its schema version checked.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/flops`` (default ``~/.cache/flops``)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flops"


def schema_template_path(cache_dir: Path, mlflow_version: str) -> Path:
    """Where the empty schema of ``mlflow_version`` is kept (one file per version)."""
    return cache_dir / f"mlflow-{mlflow_version}-schema.db"


def build_schema_template(path: Path) -> None:
    """Create an empty, fully migrated MLflow SQLite store at ``path`` (atomically).

    MLflow's ``Default`` experiment is removed: opening the copy creates it again with the
    artifact root of the process that opens it, as for a store created from nothing.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory() as artifacts:
            store = SqlAlchemyStore(f"sqlite:///{tmp}", artifacts)  # type: ignore[no-untyped-call]
            store.engine.dispose()
        with sqlite3.connect(tmp) as connection:
            connection.execute("DELETE FROM experiments")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def seed_sqlite_store(target: Path, *, cache_dir: Path) -> bool:
    """Copy the empty schema to ``target`` unless a store is there; return whether it copied.

    The template is built on first use (once per MLflow version). Any failure is logged and
    leaves ``target`` absent: the aggregator then creates the store itself, only slower.
    """
    if target.exists():
        return False
    try:
        template = schema_template_path(cache_dir, metadata.version("mlflow"))
        if not template.exists():
            logger.info("building the MLflow schema template %s (once per MLflow version)",
                        template)
            build_schema_template(template)
        shutil.copyfile(template, target)
    except Exception:  # only an optimisation: the aggregator can do without
        logger.warning("could not seed the MLflow store %s from a schema template", target,
                       exc_info=True)
        target.unlink(missing_ok=True)
        return False
    return True
