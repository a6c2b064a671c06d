"""Wire conventions shared by the data server and its client.

Upload (``DoPut``)
    The descriptor is either a command holding JSON
    ``{"tag": str, "name": str (optional), "replace": bool, "metadata": {str: str}}`` or a path
    ``[tag]`` / ``[tag, name]``. Without a name the server picks a unique one. After the last
    batch the client sends the application-metadata message ``{"commit": true, "rows": N}``; the
    server stores the data set only if that message arrived, ``N`` matches the rows received and
    the call was not cancelled, so a client that dies mid-upload never leaves a data set
    behind. The server answers with the manifest JSON as metadata.
Listing (``ListFlights``)
    Criteria are empty (all data sets) or JSON ``{"data_tags": [...]}``. Each ``FlightInfo``
    carries the manifest JSON as ``app_metadata`` and one endpoint without locations (read it
    from the same server) whose ticket is the data set id ``"<tag>/<name>"``.
Reading (``DoGet``)
    The ticket is the data set id.
Actions
    ``describe`` and ``drop`` take the data set id as body and return the manifest JSON.
"""

from __future__ import annotations

import json
from typing import Any

SPLIT_COLUMN = "split"
"""Column marking rows as ``"train"`` or held-out ``"test"`` in mock-provider partitions."""
LABEL_METADATA = "label"
"""Manifest metadata key naming a data set's label column (``flops data push --label``, the
mock data provider); a FLOps node counts that column's labels for its inventory."""
EXISTS_MARKER = "already exists"
"""Words in the server's answer to an upload of a data set that exists (without replace)."""

ACTION_DESCRIBE = "describe"
ACTION_DROP = "drop"
ACTIONS: dict[str, str] = {
    ACTION_DESCRIBE: "body: data set id '<tag>/<name>'; returns its manifest JSON",
    ACTION_DROP: "body: data set id '<tag>/<name>'; deletes it and returns its manifest JSON",
}


def commit_message(rows: int) -> bytes:
    """Return the metadata message that commits an upload of ``rows`` rows."""
    return json.dumps({"commit": True, "rows": rows}).encode()


def parse_commit_message(payload: bytes) -> int | None:
    """Return the row count of a commit message, or ``None`` if ``payload`` is not one."""
    try:
        raw: Any = json.loads(payload)
    except ValueError:
        return None
    if isinstance(raw, dict) and raw.get("commit") is True and isinstance(raw.get("rows"), int):
        rows: int = raw["rows"]
        return rows
    return None
