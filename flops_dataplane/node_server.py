"""The data server of a FLOps node: the project data server plus scoped tokens and records.

Differences from :class:`~flops_dataplane.server.DataServer` (whose storage and wire protocol
it reuses unchanged):

* every call carries a manager-issued data token (:mod:`flops_dataplane.data_tokens`) that is
  checked against the node's data key: which operations on which tags, until when;
* an upload whose schema differs from the data already stored under its tag is refused, naming
  both schemas;
* every read, write and drop is appended to the node's access record (JSON lines), so an
  operator can see who read what.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flops_dataplane import data_tokens
from flops_dataplane.auth import AUTH_HEADER
from flops_dataplane.names import DatasetKey, mock_data_tag, mock_tag_project
from flops_dataplane.server import (
    DataServer,
    _criteria_tags,
    _decode_id,
    _key_from_descriptor,
    _put_target,
)
from flops_dataplane.store import DatasetNotFound, DatasetStore

log = logging.getLogger(__name__)

MIDDLEWARE = "data-token"


class _Claims(flight.ServerMiddleware):  # type: ignore[misc]
    def __init__(self, claims: data_tokens.DataClaims) -> None:
        super().__init__()
        self.claims = claims


class DataTokenMiddlewareFactory(flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Checks the bearer data token of every call and keeps its claims for the handler."""

    def __init__(self, key: str, node_id: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._key, self._node_id, self._clock = key, node_id, clock
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._revoked: set[str] = set()

    def learner_projects(self) -> list[str]:
        """Projects whose learner or mock data provider tokens this node accepted, unrevoked."""
        with self._lock:
            return sorted(self._seen - self._revoked)

    def revoke(self, project_ids: Iterable[str]) -> None:
        """Refuse the learner and provider tokens of ``project_ids`` (their projects ended)."""
        with self._lock:
            self._revoked.update(project_ids)

    def start_call(self, info: Any, headers: dict[str, list[Any]]) -> _Claims:
        """Return the call's claims, or refuse the call."""
        values = headers.get(AUTH_HEADER) or []
        raw = values[0] if values else b""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        scheme, _, token = text.partition(" ")
        if scheme != "Bearer" or not token:
            raise flight.FlightUnauthenticatedError(
                "missing 'authorization: Bearer <data token>' (ask the manager for one)")
        try:
            claims = data_tokens.verify(self._key, token, node=self._node_id, now=self._clock())
        except data_tokens.TokenRefused as exc:
            raise flight.FlightUnauthenticatedError(str(exc)) from None
        project = data_tokens.token_project(claims.sub)
        if project is not None:
            with self._lock:
                if project in self._revoked:
                    raise flight.FlightUnauthenticatedError(
                        f"project {project} ended: its learners' data access was revoked")
                self._seen.add(project)
        return _Claims(claims)


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short stable fingerprint of a schema (field names, types, nullability)."""
    return hashlib.sha256(_one_line(schema).encode()).hexdigest()[:16]


def _one_line(schema: pa.Schema) -> str:
    text = str(schema.remove_metadata().to_string(show_schema_metadata=False))
    return text.replace("\n", ", ")


def _peer(context: Any) -> str:
    """The reader's address as gRPC names it (``ipv4:10.88.0.5:41234``), or ``""``."""
    try:
        return str(context.peer())
    except Exception:  # noqa: BLE001 - a record without the address beats a failed read
        return ""


class AccessLog:
    """Appends one JSON line per data access to ``path`` (thread-safe)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()

    def record(self, sub: str, op: str, target: str, **extra: object) -> None:
        """Append ``sub`` did ``op`` on ``target``."""
        line = json.dumps({"at": self._clock(), "sub": sub, "op": op, "target": target, **extra})
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every record so far."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip()]


class NodeDataServer(DataServer):
    """Arrow Flight data server of one FLOps node (see the module docstring).

    Parameters
    ----------
    root_dir
        The node's data directory for data sets (outlives projects).
    node_id, data_key
        The node's id and the key shared with the manager (from enrollment).
    access_log
        Where accesses are recorded.
    on_change
        Called after a data set was stored or dropped (e.g. to report the inventory soon).
    """

    def __init__(self, root_dir: Path, *, node_id: str, data_key: str, access_log: AccessLog,
                 host: str = "127.0.0.1", port: int = 0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.tokens = DataTokenMiddlewareFactory(data_key, node_id)
        flight.FlightServerBase.__init__(
            self, f"grpc://{host}:{port}", middleware={MIDDLEWARE: self.tokens})
        self.store = DatasetStore(root_dir)
        self.host = host
        self.emitter = None
        self.access = access_log
        self._on_change = on_change or (lambda: None)

    @staticmethod
    def _claims(context: Any) -> data_tokens.DataClaims:
        middleware = context.get_middleware(MIDDLEWARE)
        if not isinstance(middleware, _Claims):
            raise flight.FlightUnauthenticatedError("no verified data token on this call")
        return middleware.claims

    @staticmethod
    def _refuse(exc: data_tokens.TokenRefused) -> flight.FlightUnauthorizedError:
        return flight.FlightUnauthorizedError(str(exc))

    def _check_schema(self, key: DatasetKey, schema: pa.Schema) -> None:
        for manifest in self.store.list([key.tag]):
            if manifest.name == key.name:
                continue  # the data set being replaced
            stored = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(manifest.schema_ipc)))
            if not stored.equals(schema, check_metadata=False):
                raise flight.FlightServerError(
                    f"upload refused: the schema of the upload [{_one_line(schema)}] differs "
                    f"from tag {key.tag!r}'s existing data {manifest.dataset_id!r} "
                    f"[{_one_line(stored)}]; push to another tag or remove the old data first")

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        """Store an upload if the token allows ``write`` on its tag and the schema fits."""
        claims = self._claims(context)
        try:
            key, _, _ = _put_target(descriptor)
            claims.require(data_tokens.WRITE, key.tag)
        except data_tokens.TokenRefused as exc:
            raise self._refuse(exc) from None
        except ValueError as exc:
            raise flight.FlightServerError(f"upload refused: {exc}") from None
        self._check_schema(key, reader.schema)
        super().do_put(context, descriptor, reader, writer)
        self.access.record(claims.sub, "write", key.dataset_id, peer=_peer(context))
        self._on_change()

    def mock_projects(self) -> list[str]:
        """Projects whose mock data partitions this node holds."""
        return sorted({p for m in self.store.list() if (p := mock_tag_project(m.tag))})

    def project_ended(self, project_ids: Iterable[str]) -> None:
        """Refuse the ended projects' tokens and drop their mock data partitions.

        A mock data partition exists for its project's training only; the drop is recorded as
        done by ``node`` (not by a caller's token).
        """
        ended = list(project_ids)
        self.tokens.revoke(ended)
        dropped = False
        for project_id in ended:
            for manifest in self.store.list([mock_data_tag(project_id)]):
                key = DatasetKey(manifest.tag, manifest.name)
                try:
                    self.store.drop(key)
                except DatasetNotFound:
                    continue  # dropped meanwhile
                self.access.record("node", "drop", key.dataset_id,
                                   reason=f"project {project_id} ended")
                dropped = True
        if dropped:
            self._on_change()

    def list_flights(self, context: Any, criteria: bytes) -> Iterator[Any]:
        """List the data sets of the tags the token may read."""
        claims = self._claims(context)
        try:
            claims.require(data_tokens.READ)
            tags = claims.visible_tags(_criteria_tags(criteria))
        except data_tokens.TokenRefused as exc:
            raise self._refuse(exc) from None
        except ValueError as exc:
            raise flight.FlightServerError(f"listing refused: {exc}") from None
        if tags == []:
            return iter(())
        self.access.record(claims.sub, "list", ",".join(tags or ["*"]))
        criteria_out = json.dumps({"data_tags": tags or []}).encode()
        return super().list_flights(context, criteria_out)

    def get_flight_info(self, context: Any, descriptor: Any) -> Any:
        """Describe one data set (``read`` on its tag)."""
        try:  # authorise before looking: a refusal must not reveal whether the data exists
            key = _key_from_descriptor(descriptor)
            self._claims(context).require(data_tokens.READ, key.tag)
        except data_tokens.TokenRefused as exc:
            raise self._refuse(exc) from None
        except ValueError as exc:
            raise flight.FlightServerError(f"flight info refused: {exc}") from None
        return super().get_flight_info(context, descriptor)

    def do_get(self, context: Any, ticket: Any) -> Any:
        """Stream a data set if the token may read its tag; record the read."""
        claims = self._claims(context)
        try:
            key = DatasetKey.parse(ticket.ticket.decode("utf-8", "replace"))
            claims.require(data_tokens.READ, key.tag)
        except data_tokens.TokenRefused as exc:
            raise self._refuse(exc) from None
        except ValueError as exc:
            raise flight.FlightServerError(f"read refused: {exc}") from None
        stream = super().do_get(context, ticket)
        self.access.record(claims.sub, "read", key.dataset_id,
                           rows=self.store.describe(key).rows, peer=_peer(context))
        return stream

    def do_action(self, context: Any, action: Any) -> Iterator[bytes]:
        """``describe`` (read) or ``drop`` (drop) one data set."""
        claims = self._claims(context)
        try:
            key = _decode_id(action.body)
            claims.require(data_tokens.DROP if action.type == "drop" else data_tokens.READ,
                           key.tag)
        except data_tokens.TokenRefused as exc:
            raise self._refuse(exc) from None
        except ValueError as exc:
            raise flight.FlightServerError(f"action refused: {exc}") from None
        result = super().do_action(context, action)
        if action.type == "drop":
            self.access.record(claims.sub, "drop", key.dataset_id)
            self._on_change()
        return result
