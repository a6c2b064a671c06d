"""Read data sets from an ML data server over Arrow Flight with grpcio and numpy only.

:class:`FlightReader` is the learner's side of the data plane: ``ListFlights`` and ``DoGet``
of the Flight protocol (``arrow.flight.protocol.FlightService``, see
:mod:`flops_dataplane.protocol`), decoded by :mod:`flops_dataplane.arrow_ipc`. It needs no
pyarrow (150 MB of a learner image); :class:`flops_dataplane.client.DataClient`, which writes
and administers data sets, keeps using pyarrow on the nodes and in the CLI.

The handful of protobuf messages it exchanges (``Criteria``, ``Ticket``, ``FlightInfo``,
``FlightData``) are encoded and decoded with :mod:`flops_contracts.protowire`: nothing
generated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import grpc

from flops_contracts.protowire import ProtoWireError, bytes_field, fields
from flops_dataplane.arrow_ipc import (
    ArrowField,
    Columns,
    Message,
    concat,
    decode_batches,
    describe_schema,
    parse_message,
    read_schema,
)
from flops_dataplane.errors import DataAuthError, DataPlaneError, SchemaMismatchError
from flops_dataplane.settings import bearer

__all__ = ["FlightReader", "same_schema"]

SERVICE = "/arrow.flight.protocol.FlightService"
DEFAULT_TIMEOUT_S = 120.0
Manifest = dict[str, Any]

# field numbers of Flight.proto
_FLIGHT_INFO_APP_METADATA = 7
_FLIGHT_DATA_HEADER, _FLIGHT_DATA_BODY = 2, 1000


def _target(location: str) -> str:
    parts = urlsplit(location)
    if parts.scheme not in ("grpc", "grpc+tcp") or not parts.hostname or not parts.port:
        raise DataPlaneError(
            f"data server location {location!r} must be grpc://host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}"


def same_schema(manifests: Iterable[Manifest]) -> tuple[ArrowField, ...] | None:
    """Return the common schema of ``manifests`` (field names, types, nullability).

    Raises
    ------
    SchemaMismatchError
        Naming two data sets and both schemas if they differ.
    """
    first: Manifest | None = None
    schema: tuple[ArrowField, ...] | None = None
    for manifest in manifests:
        current = read_schema(bytes.fromhex(manifest["schema_ipc"]))
        if first is None or schema is None:
            first, schema = manifest, current
        elif current != schema:
            raise SchemaMismatchError(
                f"data sets {first['id']!r} and {manifest['id']!r} have different schemas: "
                f"[{describe_schema(schema)}] vs [{describe_schema(current)}]",
                details={"datasets": [first["id"], manifest["id"]]},
            )
    return schema


class FlightReader:
    """Lists and reads data sets of one ML data server (read-only).

    Parameters
    ----------
    location
        ``grpc://host:port`` of the server.
    token
        Bearer token; defaults to ``FLOPS_DATA_TOKEN`` (none if unset or empty).
    timeout_s
        Deadline of every call, including a whole download.

    Opening a reader connects nothing; the first call does, and fails within ``timeout_s``.
    """

    def __init__(self, location: str, token: str | None = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.location = location
        self._target = _target(location)
        authorization = bearer(token)
        self._metadata = (("authorization", authorization),) if authorization else ()
        self._timeout_s = timeout_s
        self._channel: grpc.Channel | None = None

    def _stream(self, method: str, request: bytes) -> Iterator[bytes]:
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                self._target, options=[("grpc.max_receive_message_length", -1)])
        call = self._channel.unary_stream(f"{SERVICE}/{method}")
        responses: Iterator[bytes] = call(request, timeout=self._timeout_s,
                                          metadata=self._metadata)
        return responses

    def close(self) -> None:
        """Close the connection."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> FlightReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fields(self, message: bytes) -> dict[int, int | memoryview]:
        try:
            return fields(message)
        except ProtoWireError as exc:
            raise DataPlaneError(f"data server {self.location} sent a malformed message: "
                                 f"{exc}") from None

    def _fail(self, what: str, exc: grpc.RpcError) -> DataPlaneError:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(code)
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return DataAuthError(f"{what} on {self.location} refused: {details}")
        if code == grpc.StatusCode.UNAVAILABLE:
            return DataPlaneError(f"cannot reach data server {self.location}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DataPlaneError(
                f"{what} on {self.location} took longer than {self._timeout_s:g} s")
        return DataPlaneError(f"{what} on {self.location} failed: {details}")

    def list(self, tags: Iterable[str] = ()) -> list[Manifest]:
        """Return the manifests of the data sets under ``tags`` (all data sets if empty)."""
        criteria = json.dumps({"data_tags": list(tags)}).encode()
        try:
            infos = list(self._stream("ListFlights", bytes_field(1, criteria)))
        except grpc.RpcError as exc:
            raise self._fail("listing", exc) from None
        manifests: list[Manifest] = []
        for info in infos:
            metadata = self._fields(info).get(_FLIGHT_INFO_APP_METADATA)
            if not isinstance(metadata, memoryview):
                raise DataPlaneError(f"data server {self.location} listed a data set without "
                                     "its manifest")
            manifests.append(json.loads(bytes(metadata)))
        return manifests

    def _messages(self, dataset_id: str) -> Iterator[Message]:
        try:
            for data in self._stream("DoGet", bytes_field(1, dataset_id.encode())):
                parts = self._fields(data)
                header, body = parts.get(_FLIGHT_DATA_HEADER), parts.get(_FLIGHT_DATA_BODY, b"")
                if isinstance(header, memoryview) and len(header) and not isinstance(body, int):
                    yield parse_message(header, body)  # metadata-only messages carry no header
        except grpc.RpcError as exc:
            raise self._fail(f"reading {dataset_id!r}", exc) from None

    def read_columns(self, manifests: Sequence[Manifest]) -> tuple[tuple[ArrowField, ...],
                                                                    Columns]:
        """Read the data sets described by ``manifests`` (from :meth:`list`) as columns.

        Returns the schema and one array per column, rows in the manifests' order.

        Raises
        ------
        SchemaMismatchError
            If the data sets have different schemas.
        flops_dataplane.arrow_ipc.UnsupportedArrowError
            If a column's type is not one the reader decodes (the message says what to do).
        """
        schema = same_schema(manifests) or ()
        batches: list[Columns] = []
        for manifest in manifests:
            batches += decode_batches(self._messages(manifest["id"]), schema)[1]
        return schema, concat(schema, batches)
