"""The FLOps node agent: a node's long-lived data server, enrolled with the manager.

``flops node serve --name N --cluster C --data-dir DIR --manager URL`` (token in
``FLOPS_NODE_TOKEN``, never on the command line):

1. On first start the agent trades the operator's single-use node token for the node's
   credentials at ``POST /api/v1/node-agent/enroll`` and keeps them in ``DIR/node.json``
   (mode 0600), so later starts need no token.
2. It serves ``DIR/data`` with :class:`~flops_dataplane.node_server.NodeDataServer`; the data
   outlives every project and every restart of the agent.
3. Every ``report_interval_s`` (and right after data changes) it reports its inventory to
   ``PUT /api/v1/node-agent/report``; while the manager is unreachable it keeps serving and
   reports again once the manager answers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flops_contracts.errors import ConfigError
from flops_contracts.ids import check_identifier
from flops_dataplane.names import DatasetKey, parquet_path
from flops_dataplane.node_server import AccessLog, NodeDataServer, schema_fingerprint
from flops_dataplane.protocol import LABEL_METADATA

log = logging.getLogger(__name__)

TOKEN_ENV = "FLOPS_NODE_TOKEN"  # noqa: S105 - a variable name, not a secret
STATE_FILE = "node.json"
ACCESS_FILE = "access.jsonl"
DATA_DIR = "data"
ENROLL_PATH = "/api/v1/node-agent/enroll"
REPORT_PATH = "/api/v1/node-agent/report"
MAX_HISTOGRAM_CLASSES = 100
GOODBYE_TIMEOUT_S = 3.0
"""How long a stopping agent waits for the manager to take its last (``leaving``) report."""


class NodeAgentSettings(BaseModel):
    """Settings of one node agent."""

    model_config = ConfigDict(extra="forbid")

    name: str
    cluster: str = "local"
    data_dir: Path
    manager_url: str
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    advertise_host: str | None = Field(None, description="host learners reach; default host")
    report_interval_s: float = Field(10.0, gt=0)

    @field_validator("name", "cluster")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return check_identifier(value, what="node name or cluster")

    @field_validator("manager_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("the manager URL must start with http:// or https://")
        return value.rstrip("/")


@dataclasses.dataclass(frozen=True)
class NodeCredentials:
    """What enrollment gave this node (kept in ``node.json``)."""

    node_id: str
    owner: str
    credential: str
    data_key: str


def node_platform() -> str:
    """Return this machine's platform as ``os/arch`` (``linux/amd64``, ``linux/arm64``...)."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7"}.get(machine, machine)
    return f"{platform.system().lower()}/{arch}"


def _http(method: str, url: str, body: dict[str, Any],
          headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - the manager URL is checked to be http(s)
        url, data=json.dumps(body).encode(), method=method,
        headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
            return int(answer.status), json.loads(answer.read(1 << 20) or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return int(exc.code), json.loads(exc.read(1 << 16) or b"null")
        except ValueError:
            return int(exc.code), None


def load_credentials(data_dir: Path) -> NodeCredentials | None:
    """The credentials kept in ``data_dir``, if the node enrolled before."""
    path = data_dir / STATE_FILE
    if not path.exists():
        return None
    return NodeCredentials(**json.loads(path.read_text(encoding="utf-8")))


def _save_credentials(data_dir: Path, creds: NodeCredentials) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    temp = data_dir / f".{STATE_FILE}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(creds), handle)
    os.replace(temp, data_dir / STATE_FILE)


def enroll(settings: NodeAgentSettings, token: str) -> NodeCredentials:
    """Trade the operator's node token for the node's credentials and keep them.

    Raises
    ------
    ConfigError
        If the manager refuses the token (its message says why) or cannot be reached.
    """
    try:
        status, answer = _http("POST", settings.manager_url + ENROLL_PATH, {
            "token": token, "name": settings.name, "cluster": settings.cluster,
            "platform": node_platform()})
    except OSError as exc:
        raise ConfigError(f"cannot reach the manager at {settings.manager_url}: {exc}") from None
    if status != 200 or not isinstance(answer, dict):
        message = answer.get("message") if isinstance(answer, dict) else answer
        raise ConfigError(f"node enrollment refused (HTTP {status}): {message}")
    creds = NodeCredentials(node_id=answer["node_id"], owner=answer["owner"],
                            credential=answer["credential"], data_key=answer["data_key"])
    _save_credentials(settings.data_dir, creds)
    return creds


def label_histogram(path: Path, column: str) -> dict[str, int] | None:
    """Counts per label value of ``column`` in a Parquet file (``None``: no such column)."""
    try:
        table = pq.read_table(str(path), columns=[column])
    except (pa.ArrowException, KeyError, OSError):
        return None
    counts = pc.value_counts(table.column(0)).to_pylist()
    if len(counts) > MAX_HISTOGRAM_CLASSES:
        return None
    return {str(item["values"]): int(item["counts"]) for item in counts}


def inventory(server: NodeDataServer) -> list[dict[str, Any]]:
    """One entry per stored data set: tag, name, rows, bytes, schema fingerprint, labels."""
    entries = []
    for manifest in server.store.list():
        schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(manifest.schema_ipc)))
        entry: dict[str, Any] = {
            "tag": manifest.tag, "name": manifest.name, "rows": manifest.rows,
            "bytes": manifest.bytes, "schema_fingerprint": schema_fingerprint(schema),
            "created": manifest.created,
        }
        label = manifest.metadata.get(LABEL_METADATA)
        if label:
            entry["label_column"] = label
            path = parquet_path(server.store.root, DatasetKey(manifest.tag, manifest.name))
            histogram = label_histogram(path, label)
            if histogram is not None:
                entry["label_histogram"] = histogram
        entries.append(entry)
    return entries


class NodeAgent:
    """Runs the node's data server and reports its inventory (see the module docstring)."""

    def __init__(self, settings: NodeAgentSettings, creds: NodeCredentials) -> None:
        self.settings = settings
        self.creds = creds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.server = NodeDataServer(
            settings.data_dir / DATA_DIR, node_id=creds.node_id, data_key=creds.data_key,
            access_log=AccessLog(settings.data_dir / ACCESS_FILE),
            host=settings.host, port=settings.port, on_change=self._wake.set)

    @property
    def location(self) -> str:
        """The ``grpc://host:port`` learners and ``flops data`` reach this node at."""
        host = self.settings.advertise_host or self.settings.host
        return f"grpc://{host}:{self.server.port}"

    def report(self, *, leaving: bool = False) -> bool:
        """Send the inventory once; return whether the manager accepted it.

        ``leaving``: the agent is stopping, so the manager shows the node offline at once
        (and places no learner on it) instead of after three missed reports.
        """
        body = {"leaving": leaving, "location": self.location, "platform": node_platform(),
                "cluster": self.settings.cluster, "interval_s": self.settings.report_interval_s,
                "datasets": inventory(self.server),
                "learner_projects": sorted({*self.server.tokens.learner_projects(),
                                            *self.server.mock_projects()})}
        try:
            status, answer = _http("PUT", self.settings.manager_url + REPORT_PATH, body,
                                   {"Authorization": f"Node {self.creds.credential}"},
                                   timeout_s=GOODBYE_TIMEOUT_S if leaving else 10.0)
        except OSError as exc:
            log.warning("inventory report failed (manager unreachable: %s); will retry", exc)
            return False
        if status != 200:
            log.warning("inventory report refused (HTTP %s): %s", status, answer)
            return False
        revoked = answer.get("revoked") if isinstance(answer, dict) else None
        if revoked:
            log.info("data access revoked and mock data dropped for ended projects %s",
                     revoked)
            self.server.project_ended(str(p) for p in revoked)
        return True

    def run(self) -> None:
        """Report until :meth:`stop`; then say goodbye and shut the data server down."""
        try:
            while not self._stop.is_set():
                self.report()
                self._wake.wait(self.settings.report_interval_s)
                self._wake.clear()
            self.report(leaving=True)
        finally:
            self.server.shutdown()

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._stop.set()
        self._wake.set()


def start_agent(settings: NodeAgentSettings, environ: dict[str, str] | None = None) -> NodeAgent:
    """Enroll if needed (token from ``FLOPS_NODE_TOKEN``) and start the data server.

    Raises
    ------
    ConfigError
        If the node never enrolled and no token is given, or enrollment is refused.
    """
    env = os.environ if environ is None else environ
    creds = load_credentials(settings.data_dir)
    if creds is None:
        token = env.get(TOKEN_ENV, "")
        if not token:
            raise ConfigError(
                f"node {settings.name!r} has not enrolled yet: set {TOKEN_ENV} to a token from "
                f"`flops node token --name {settings.name}`")
        creds = enroll(settings, token)  # the token is spent; it is never written anywhere
    return NodeAgent(settings, creds)
