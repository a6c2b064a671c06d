"""The ML data server: tagged Parquet data sets served over Arrow Flight.

Run it with ``python -m flops_dataplane.server`` (or ``flops-data-server``); settings come from
``FLOPS_DATA_*`` variables (see :class:`~flops_dataplane.settings.DataServerSettings`). The wire
conventions are described in :mod:`flops_dataplane.protocol`, the storage layout in
:mod:`flops_dataplane.store`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flops_contracts.entrypoint import start_component
from flops_contracts.errors import FlopsError
from flops_contracts.events import Component, EventType
from flops_dataplane.auth import TokenAuthMiddlewareFactory
from flops_dataplane.manifest import Manifest
from flops_dataplane.names import DatasetKey, new_dataset_name
from flops_dataplane.protocol import (
    ACTION_DESCRIBE,
    ACTIONS,
    parse_commit_message,
)
from flops_dataplane.settings import SERVER_ENV_PREFIX, DataServerSettings
from flops_dataplane.store import DatasetNotFound, DatasetStore, PendingUpload, StoreError
from flops_messaging import EventEmitter, create_publisher

log = logging.getLogger(__name__)
SIGNAL_POLL_S = 0.5
"""How often the main thread looks for a stop signal (see :func:`main`)."""


@contextlib.contextmanager
def _flight_errors(what: str) -> Iterator[None]:
    """Turn request errors into Flight errors whose message says what is wrong."""
    try:
        yield
    except flight.FlightError:
        raise
    except DatasetNotFound as exc:
        raise flight.FlightServerError(f"{what}: {exc}") from None
    except (ValueError, StoreError) as exc:
        raise flight.FlightServerError(f"{what}: {exc}") from None
    except Exception:
        log.exception("%s failed", what)
        raise flight.FlightInternalError(f"{what}: internal error (see server log)") from None


def _put_target(descriptor: Any) -> tuple[DatasetKey, bool, dict[str, str]]:
    """Return the key, replace flag and metadata requested by an upload descriptor."""
    if descriptor.descriptor_type == flight.DescriptorType.PATH:
        parts = [p.decode("utf-8", "replace") if isinstance(p, bytes) else p
                 for p in descriptor.path]
        if len(parts) not in (1, 2):
            raise ValueError("descriptor path must be [tag] or [tag, name]")
        name = parts[1] if len(parts) == 2 else new_dataset_name()
        return DatasetKey(parts[0], name), False, {}
    try:
        raw = json.loads(descriptor.command)
    except ValueError:
        raise ValueError("descriptor command must be JSON {\"tag\": ..., \"name\": ...}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tag"), str):
        raise ValueError("descriptor command must be a JSON object with a string 'tag'")
    name = raw.get("name") or new_dataset_name()
    if not isinstance(name, str):
        raise ValueError("'name' must be a string")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("'metadata' must be an object of strings")
    return DatasetKey(raw["tag"], name), bool(raw.get("replace", False)), metadata


def _key_from_descriptor(descriptor: Any) -> DatasetKey:
    if descriptor.descriptor_type == flight.DescriptorType.PATH:
        parts = [p.decode("utf-8", "replace") if isinstance(p, bytes) else p
                 for p in descriptor.path]
        if len(parts) != 2:
            raise ValueError("descriptor path must be [tag, name]")
        return DatasetKey(parts[0], parts[1])
    return DatasetKey.parse(bytes(descriptor.command).decode("utf-8", "replace"))


def _decode_id(body: Any) -> DatasetKey:
    raw = body.to_pybytes() if hasattr(body, "to_pybytes") else bytes(body)
    return DatasetKey.parse(raw.decode("utf-8", "replace"))


def _criteria_tags(criteria: bytes) -> list[str]:
    if not criteria:
        return []
    try:
        raw = json.loads(criteria)
    except ValueError:
        raise ValueError("criteria must be JSON {\"data_tags\": [...]}") from None
    tags = raw.get("data_tags", []) if isinstance(raw, dict) else None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("criteria 'data_tags' must be a list of strings")
    return tags


def _flight_info(manifest: Manifest) -> Any:
    schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(manifest.schema_ipc)))
    endpoint = flight.FlightEndpoint(manifest.dataset_id.encode(), [])
    return flight.FlightInfo(
        schema,
        flight.FlightDescriptor.for_path(manifest.tag, manifest.name),
        [endpoint],
        manifest.rows,
        manifest.bytes,
        app_metadata=manifest.to_json().encode(),
    )


class DataServer(flight.FlightServerBase):  # type: ignore[misc]
    """Arrow Flight server over a :class:`~flops_dataplane.store.DatasetStore`.

    Parameters
    ----------
    root_dir
        Storage root (created if missing; stale temporary files are removed).
    host, port
        Bind address; port 0 picks a free port (see :attr:`port`).
    token
        Shared bearer token required on every call, or ``None`` for no authentication.
    emitter
        Optional event emitter told about started servers and stored data sets.
    """

    def __init__(
        self,
        root_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        emitter: EventEmitter | None = None,
    ) -> None:
        middleware = {"auth": TokenAuthMiddlewareFactory(token)} if token else {}
        super().__init__(f"grpc://{host}:{port}", middleware=middleware)
        self.store = DatasetStore(root_dir)
        self.host = host
        self.emitter = emitter

    @property
    def location(self) -> str:
        """The ``grpc://host:port`` the server listens on."""
        return f"grpc://{self.host}:{self.port}"

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        """Store an uploaded data set (see :mod:`flops_dataplane.protocol`)."""
        with _flight_errors("upload refused"):
            key, replace, metadata = _put_target(descriptor)
            upload: PendingUpload = self.store.begin_upload(key, reader.schema)
        with _flight_errors(f"upload of {key.dataset_id!r} failed"):
            committed_rows: int | None = None
            try:
                for chunk in reader:
                    if chunk.data is not None:
                        if committed_rows is not None:
                            raise ValueError("data received after the commit message")
                        upload.write(chunk.data)
                    if chunk.app_metadata is not None:
                        committed_rows = parse_commit_message(chunk.app_metadata.to_pybytes())
                if context.is_cancelled():
                    raise ValueError("the client cancelled the upload")
                if committed_rows is None:
                    raise ValueError(
                        "the upload ended without a commit message {\"commit\": true, \"rows\": N}"
                    )
                if committed_rows != upload.rows:
                    raise ValueError(
                        f"commit says {committed_rows} rows but {upload.rows} were received"
                    )
                manifest = upload.commit(replace=replace, metadata=metadata)
            finally:
                upload.abort()
            writer.write(pa.py_buffer(manifest.to_json().encode()))
        log.info("stored %s (%d rows, %d bytes)", manifest.dataset_id, manifest.rows,
                 manifest.bytes)
        if self.emitter is not None:
            self.emitter.emit(EventType.PROGRESS, stored=manifest.dataset_id, rows=manifest.rows)

    def list_flights(self, context: Any, criteria: bytes) -> Iterator[Any]:
        """Yield a ``FlightInfo`` per data set under the requested tags (all when empty)."""
        with _flight_errors("listing refused"):
            manifests = self.store.list(_criteria_tags(criteria))
        for manifest in manifests:
            yield _flight_info(manifest)

    def get_flight_info(self, context: Any, descriptor: Any) -> Any:
        """Describe one data set (descriptor path ``[tag, name]`` or command ``tag/name``)."""
        with _flight_errors("flight info refused"):
            return _flight_info(self.store.describe(_key_from_descriptor(descriptor)))

    def do_get(self, context: Any, ticket: Any) -> Any:
        """Stream a data set's record batches (ticket = data set id)."""
        with _flight_errors("read refused"):
            key = DatasetKey.parse(ticket.ticket.decode("utf-8", "replace"))
            schema, batches = self.store.open_batches(key)
        return flight.GeneratorStream(schema, batches)

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        """Return the supported actions and their descriptions."""
        return list(ACTIONS.items())

    def do_action(self, context: Any, action: Any) -> Iterator[bytes]:
        """Run ``describe`` or ``drop`` on the data set named by the action body."""
        with _flight_errors(f"action {action.type!r} refused"):
            if action.type not in ACTIONS:
                raise ValueError(f"unknown action; use one of {sorted(ACTIONS)}")
            key = _decode_id(action.body)
            if action.type == ACTION_DESCRIBE:
                manifest = self.store.describe(key)
            else:  # ACTION_DROP, the only other action
                manifest = self.store.drop(key)
                log.info("dropped %s", key.dataset_id)
        return iter([manifest.to_json().encode()])


def build_server(settings: DataServerSettings) -> DataServer:
    """Create (and bind) a data server from ``settings``."""
    emitter = EventEmitter(
        create_publisher(settings.events_uri, project_id=settings.project_id,
                         component=Component.DATA_SERVER, instance=settings.instance),
        project_id=settings.project_id,
        component=Component.DATA_SERVER,
        instance=settings.instance,
    )
    return DataServer(
        Path(settings.root_dir),
        host=settings.host,
        port=settings.port,
        token=settings.token,
        emitter=emitter,
    )


def main() -> int:
    """Run the data server until SIGINT/SIGTERM, then shut down; return the exit code."""
    settings = start_component(
        DataServerSettings, prog="flops-data-server", prefix=SERVER_ENV_PREFIX
    )
    try:
        server = build_server(settings)
    except (FlopsError, OSError) as exc:
        print(f"flops-data-server: {exc}", file=sys.stderr)
        return 2
    # The server is already serving (it starts when constructed); pyarrow's serve() would
    # install its own signal handlers, so wait on an event set by ours instead.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"listening on {server.location}", flush=True)
    if server.emitter is not None:
        server.emitter.emit(EventType.STARTED, location=server.location,
                            authenticated=settings.token is not None)
    try:
        # with a timeout: a signal the kernel delivers to one of gRPC's threads only flags
        # it for the main thread, which an untimed wait never lets run the handler
        while not stop.wait(SIGNAL_POLL_S):
            pass
        log.info("stopping")
        server.shutdown()
    finally:
        if server.emitter is not None:
            server.emitter.close()
    return 0

if __name__ == "__main__":
    sys.exit(main())
