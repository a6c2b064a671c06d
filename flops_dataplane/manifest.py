"""The JSON manifest stored next to every data set's Parquet file.

A data set is visible exactly when its manifest exists: the server writes the manifest last and
atomically (``os.replace``), and deletes it first when dropping the data set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Description of one stored data set.

    Attributes
    ----------
    tag, name
        The data set's address; ``dataset_id`` is ``"<tag>/<name>"``.
    schema
        The Arrow schema as text (without schema metadata).
    schema_ipc
        The Arrow schema serialised as IPC, hex-encoded (exact round trip).
    rows, bytes
        Row count and Parquet file size.
    sha256
        Hex SHA-256 of the Parquet file.
    created
        ISO 8601 UTC creation time.
    metadata
        Free-form string metadata given by the uploader (e.g. the partition index).
    """

    tag: str
    name: str
    schema: str
    schema_ipc: str
    rows: int
    bytes: int
    sha256: str
    created: str
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    version: int = MANIFEST_VERSION

    @property
    def dataset_id(self) -> str:
        """The data set id ``"<tag>/<name>"``."""
        return f"{self.tag}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dictionary (including ``id``)."""
        out = dataclasses.asdict(self)
        out["id"] = self.dataset_id
        return out

    def to_json(self) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Manifest:
        """Build from a dictionary written by :meth:`to_dict` (unknown keys are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in fields})


def now_iso() -> str:
    """Return the current UTC time in ISO 8601 with a ``Z`` suffix."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_manifest_atomically(manifest: Manifest, path: Path, temp_dir: Path) -> None:
    """Write ``manifest`` to ``path`` via a temporary file in ``temp_dir`` and ``os.replace``."""
    temp = temp_dir / f"{uuid.uuid4().hex}.manifest.tmp"
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def read_manifest(path: Path) -> Manifest:
    """Read a manifest file.

    Raises
    ------
    OSError
        If the file cannot be read (e.g. it was dropped meanwhile).
    ValueError
        If it is not a valid manifest.
    """
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"manifest {path} is not a JSON object")
    try:
        return Manifest.from_dict(raw)
    except TypeError as exc:
        raise ValueError(f"manifest {path} is incomplete: {exc}") from None
