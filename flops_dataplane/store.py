"""Parquet storage of tagged data sets under one root directory, independent of Flight.

Layout::

    <root>/<tag>/<name>.parquet         the data
    <root>/<tag>/<name>.manifest.json   its manifest (present = visible)
    <root>/.tmp/                        uploads in progress (emptied on start)

An upload streams record batches into a Parquet file in ``<root>/.tmp`` and is committed by
``os.replace`` of the Parquet file and then of the manifest. An aborted upload deletes its
temporary file; temporary files left by a crashed server are removed when the store is opened.
One root directory must be used by one server process only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flops_dataplane.manifest import Manifest, now_iso, read_manifest, write_manifest_atomically
from flops_dataplane.names import (
    MANIFEST_SUFFIX,
    TEMP_DIR_NAME,
    DatasetKey,
    manifest_path,
    parquet_path,
    tag_dir,
)
from flops_dataplane.protocol import EXISTS_MARKER

log = logging.getLogger(__name__)

READ_BATCH_ROWS = 65_536


class StoreError(Exception):
    """A store operation was refused; the message says why."""


class DatasetNotFound(StoreError):
    """The data set does not exist."""


class DatasetExists(StoreError):
    """A data set with this id already exists and replacing was not requested."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PendingUpload:
    """A data set being written; call :meth:`commit` or :meth:`abort` exactly once."""

    def __init__(self, store: DatasetStore, key: DatasetKey, schema: pa.Schema) -> None:
        self.store = store
        self.key = key
        self.schema = schema
        self.rows = 0
        self.temp_path = store.temp_dir / f"{uuid.uuid4().hex}.parquet.tmp"
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(str(self.temp_path), schema)

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one record batch."""
        if self._writer is None:
            raise StoreError("upload is already finished")
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def commit(
        self, *, replace: bool = False, metadata: Mapping[str, str] | None = None
    ) -> Manifest:
        """Close the file and make the data set visible atomically.

        Raises
        ------
        DatasetExists
            If the data set exists and ``replace`` is false (the upload is then aborted).
        """
        if self._writer is None:
            raise StoreError("upload is already finished")
        try:
            self._writer.close()
            self._writer = None
            manifest = Manifest(
                tag=self.key.tag,
                name=self.key.name,
                schema=self.schema.remove_metadata().to_string(),
                schema_ipc=self.schema.serialize().to_pybytes().hex(),
                rows=self.rows,
                bytes=self.temp_path.stat().st_size,
                sha256=_sha256(self.temp_path),
                created=now_iso(),
                metadata=dict(metadata or {}),
            )
            self.store.commit(self.key, self.temp_path, manifest, replace=replace)
            return manifest
        finally:
            self.abort()

    def abort(self) -> None:
        """Discard the upload and its temporary file (idempotent)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                log.debug("closing an aborted upload failed", exc_info=True)
            self._writer = None
        self.temp_path.unlink(missing_ok=True)
        self.store._upload_finished(self)


class DatasetStore:
    """Tagged Parquet data sets under ``root`` (see the module docstring for the layout).

    Parameters
    ----------
    root
        The storage root; created if missing. Stale temporary files are removed.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.temp_dir = self.root / TEMP_DIR_NAME
        if self.temp_dir.exists():
            shutil.rmtree(self.temp_dir)
        self.temp_dir.mkdir()
        self._lock = threading.Lock()
        self._active = threading.Condition()
        self._uploads: set[PendingUpload] = set()

    # -- uploads -------------------------------------------------------------------------------

    def begin_upload(self, key: DatasetKey, schema: pa.Schema) -> PendingUpload:
        """Start writing data set ``key`` with ``schema``."""
        upload = PendingUpload(self, key, schema)
        with self._active:
            self._uploads.add(upload)
            self._active.notify_all()
        return upload

    def _upload_finished(self, upload: PendingUpload) -> None:
        with self._active:
            self._uploads.discard(upload)
            self._active.notify_all()

    def active_uploads(self) -> int:
        """Return the number of uploads in progress."""
        with self._active:
            return len(self._uploads)

    def wait_active_uploads(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` uploads are in progress; return whether that happened."""
        with self._active:
            return self._active.wait_for(lambda: len(self._uploads) == count, timeout)

    def commit(
        self, key: DatasetKey, temp_path: Path, manifest: Manifest, *, replace: bool
    ) -> None:
        """Move a finished temporary Parquet file into place and write its manifest last."""
        final = parquet_path(self.root, key)
        final_manifest = manifest_path(self.root, key)
        with self._lock:
            if final_manifest.exists() and not replace:
                raise DatasetExists(
                    f"data set {key.dataset_id!r} {EXISTS_MARKER}; drop it or upload with replace"
                )
            final.parent.mkdir(exist_ok=True)
            os.replace(temp_path, final)
            write_manifest_atomically(manifest, final_manifest, self.temp_dir)

    # -- reads ---------------------------------------------------------------------------------

    def describe(self, key: DatasetKey) -> Manifest:
        """Return the manifest of ``key``.

        Raises
        ------
        DatasetNotFound
            If the data set does not exist.
        """
        path = manifest_path(self.root, key)
        try:
            return read_manifest(path)
        except FileNotFoundError:
            raise DatasetNotFound(f"data set {key.dataset_id!r} not found") from None

    def list(self, tags: Iterable[str] = ()) -> list[Manifest]:
        """Return the manifests of all data sets under ``tags`` (all tags when empty), sorted."""
        wanted = list(dict.fromkeys(tags))
        if wanted:
            dirs = [tag_dir(self.root, tag) for tag in wanted]
        else:
            dirs = [d for d in self.root.iterdir() if d.is_dir() and d.name != TEMP_DIR_NAME]
        found: list[Manifest] = []
        for directory in dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob(f"*{MANIFEST_SUFFIX}")):
                try:
                    found.append(read_manifest(path))
                except FileNotFoundError:
                    continue  # dropped while listing
                except ValueError:
                    log.warning("ignoring unreadable manifest %s", path, exc_info=True)
        return sorted(found, key=lambda m: (m.tag, m.name))

    def open_batches(self, key: DatasetKey) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open data set ``key`` and return its schema and an iterator of record batches.

        The file stays readable through the open handle even if the data set is dropped or
        replaced meanwhile.

        Raises
        ------
        DatasetNotFound
            If the data set does not exist.
        """
        self.describe(key)
        try:
            parquet = pq.ParquetFile(str(parquet_path(self.root, key)))
        except FileNotFoundError:
            raise DatasetNotFound(f"data set {key.dataset_id!r} not found") from None
        return parquet.schema_arrow, parquet.iter_batches(batch_size=READ_BATCH_ROWS)

    def drop(self, key: DatasetKey) -> Manifest:
        """Delete data set ``key`` (manifest first, so it disappears atomically).

        Raises
        ------
        DatasetNotFound
            If the data set does not exist.
        """
        with self._lock:
            manifest = self.describe(key)
            manifest_path(self.root, key).unlink()
            parquet_path(self.root, key).unlink(missing_ok=True)
        return manifest
