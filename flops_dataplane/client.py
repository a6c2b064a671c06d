"""Client of the ML data server (:class:`DataClient`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flops_dataplane.errors import (
    DataAuthError,
    DataPlaneError,
    DatasetExistsError,
    NoDataError,
)
from flops_dataplane.flight_reader import same_schema
from flops_dataplane.protocol import ACTION_DESCRIBE, ACTION_DROP, EXISTS_MARKER, commit_message
from flops_dataplane.settings import bearer

DEFAULT_TIMEOUT_S = 120.0

Manifest = dict[str, Any]


def _schema_of(manifest: Manifest) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(manifest["schema_ipc"])))


class DataClient:
    """Talks to one ML data server.

    Parameters
    ----------
    location
        ``grpc://host:port`` of the server.
    token
        Shared bearer token; defaults to ``FLOPS_DATA_TOKEN`` (none if unset or empty).
    timeout_s
        Deadline of every call, including whole uploads and downloads.
    """

    def __init__(
        self,
        location: str,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.location = location
        authorization = bearer(token)
        headers = [(b"authorization", authorization.encode())] if authorization else []
        self._options = flight.FlightCallOptions(timeout=timeout_s, headers=headers)
        try:
            self._client = flight.connect(location)
        except (pa.ArrowException, OSError) as exc:
            raise DataPlaneError(f"cannot connect to data server {location}: {exc}") from None

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def __enter__(self) -> DataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, what: str, exc: Exception) -> DataPlaneError:
        message = str(exc).split(". gRPC client debug context")[0]
        if isinstance(exc, flight.FlightUnauthenticatedError | flight.FlightUnauthorizedError):
            return DataAuthError(f"{what} on {self.location} refused: {message}")
        if EXISTS_MARKER in message:
            return DatasetExistsError(f"{what} on {self.location} failed: {message}")
        return DataPlaneError(f"{what} on {self.location} failed: {message}")

    def upload(
        self,
        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
        tag: str,
        name: str | None = None,
        *,
        replace: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Manifest:
        """Upload ``data`` as data set ``<tag>/<name>`` and return its manifest.

        Parameters
        ----------
        data
            A table, a record batch reader or an iterable of record batches (streamed; only
            one batch is held at a time).
        tag, name
            Where to store it; without a name the server picks a unique one.
        replace
            Replace an existing data set of the same name instead of failing.
        metadata
            Strings stored in the manifest (e.g. ``{"partition": "0"}``).
        """
        if isinstance(data, pa.Table):
            schema, batches = data.schema, iter(data.to_batches(max_chunksize=65_536))
        elif isinstance(data, pa.RecordBatchReader):
            schema, batches = data.schema, iter(data)
        else:
            iterator = iter(data)
            try:
                first = next(iterator)
            except StopIteration:
                raise DataPlaneError("upload needs at least one record batch") from None
            schema, batches = first.schema, itertools.chain([first], iterator)
        command = {"tag": tag, "name": name, "replace": replace, "metadata": dict(metadata or {})}
        descriptor = flight.FlightDescriptor.for_command(json.dumps(command).encode())
        try:
            writer, reader = self._client.do_put(descriptor, schema, options=self._options)
            rows = 0
            with writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
                writer.write_metadata(pa.py_buffer(commit_message(rows)))
                writer.done_writing()
                answer = reader.read()
            if answer is None:
                raise DataPlaneError(f"data server {self.location} did not confirm the upload")
            result: Manifest = json.loads(answer.to_pybytes())
            return result
        except pa.ArrowException as exc:
            raise self._fail(f"upload to tag {tag!r}", exc) from None

    def list(self, tags: Iterable[str] = ()) -> list[Manifest]:
        """Return the manifests of the data sets under ``tags`` (all data sets if empty)."""
        criteria = json.dumps({"data_tags": list(tags)}).encode()
        try:
            infos = list(self._client.list_flights(criteria, options=self._options))
        except pa.ArrowException as exc:
            raise self._fail("listing", exc) from None
        return [json.loads(info.app_metadata) for info in infos]

    def iter_batches(self, tags: Iterable[str]) -> Iterator[pa.RecordBatch]:
        """Yield the record batches of every data set under ``tags``.

        Raises
        ------
        NoDataError
            If no data set matches.
        SchemaMismatchError
            If the matching data sets have different schemas.
        """
        tag_list = list(tags)
        manifests = self.list(tag_list)
        if not manifests:
            raise NoDataError(f"no data for tags {tag_list} on {self.location}")
        same_schema(manifests)
        for manifest in manifests:
            yield from self._read_one(manifest["id"])

    def _read_one(self, dataset_id: str) -> Iterator[pa.RecordBatch]:
        try:
            reader = self._client.do_get(flight.Ticket(dataset_id.encode()), options=self._options)
            for chunk in reader:
                yield chunk.data
        except pa.ArrowException as exc:
            raise self._fail(f"reading {dataset_id!r}", exc) from None

    def read(self, tags: Iterable[str]) -> pa.Table:
        """Read every data set under ``tags`` into one table (see :meth:`iter_batches`)."""
        tag_list = list(tags)
        manifests = self.list(tag_list)
        if not manifests:
            raise NoDataError(f"no data for tags {tag_list} on {self.location}")
        return self.read_datasets(manifests)

    def read_datasets(self, manifests: Sequence[Manifest]) -> pa.Table:
        """Read the data sets described by ``manifests`` (from :meth:`list`) into one table.

        Raises
        ------
        SchemaMismatchError
            If the data sets have different schemas.
        """
        same_schema(manifests)
        schema = _schema_of(manifests[0]) if manifests else pa.schema([])
        batches = [b for m in manifests for b in self._read_one(m["id"])]
        return pa.Table.from_batches(batches, schema=schema)

    def _action(self, kind: str, dataset_id: str) -> Manifest:
        try:
            results = list(self._client.do_action(
                flight.Action(kind, dataset_id.encode()), options=self._options
            ))
        except pa.ArrowException as exc:
            raise self._fail(f"{kind} {dataset_id!r}", exc) from None
        result: Manifest = json.loads(results[0].body.to_pybytes())
        return result

    def describe(self, dataset_id: str) -> Manifest:
        """Return the manifest of data set ``"<tag>/<name>"``."""
        return self._action(ACTION_DESCRIBE, dataset_id)

    def drop(self, dataset_id: str) -> Manifest:
        """Delete data set ``"<tag>/<name>"`` and return its former manifest."""
        return self._action(ACTION_DROP, dataset_id)
