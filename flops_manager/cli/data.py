"""``flops data push|ls|rm``: your data sets on your FLOps nodes.

Data goes straight from this machine to the node's data server: the manager only hands out a
short-lived token for that node, those operations and that tag (``POST
/api/v1/nodes/<name>/data-grant``), so data never transits the manager. Uploads are streamed
(one record batch at a time) and atomic: the node writes a temporary file and renames it only
after the commit message, so an interrupted push leaves nothing and the old data untouched.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flops_contracts.errors import FlopsError
from flops_dataplane.errors import DataPlaneError
from flops_dataplane.names import DatasetKey
from flops_dataplane.protocol import LABEL_METADATA
from flops_manager.cli.client import ApiClient, connect

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 65_536


def default_name(path: Path) -> str:
    """A data set name from a file name (``digits-0.csv`` -> ``digits-0``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", path.name.split(".")[0]).strip("-._")
    return stem[:63] or "data"


def open_batches(path: Path) -> pa.RecordBatchReader:
    """A streaming reader of a CSV or Parquet file.

    Raises
    ------
    FlopsError
        If the file is missing or neither CSV nor Parquet.
    """
    import pyarrow as pa  # the data commands' libraries load with them, not with every command
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FlopsError(f"{path} is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            parquet = pq.ParquetFile(str(path))
            return pa.RecordBatchReader.from_batches(
                parquet.schema_arrow, parquet.iter_batches(batch_size=BATCH_ROWS))
        if suffix == ".csv":
            reader: pa.RecordBatchReader = pacsv.open_csv(str(path))
            return reader
    except pa.ArrowException as exc:
        raise FlopsError(f"cannot read {path}: {exc}") from None
    raise FlopsError(f"{path}: only .csv and .parquet files can be pushed")


def _grant(api: ApiClient, node: str, ops: list[str], tags: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = api.request("POST", f"nodes/{node}/data-grant",
                                         json={"ops": ops, "tags": tags})
    return answer


def push(api: ApiClient, node: str, tag: str, path: Path, *, name: str | None = None,
         label: str | None = None, replace: bool = False) -> dict[str, Any]:
    """Stream ``path`` to ``node`` as data set ``<tag>/<name>`` and return its manifest.

    Raises
    ------
    FlopsError
        For a bad name or file, an unknown node, a refused or failed upload.
    """
    try:
        key = DatasetKey(tag, name or default_name(path))
    except ValueError as exc:
        raise FlopsError(str(exc)) from None
    reader = open_batches(path)
    if label and reader.schema.get_field_index(label) < 0:
        raise FlopsError(f"label column {label!r} is not in {path} "
                         f"(columns: {', '.join(reader.schema.names)})")
    from flops_dataplane.client import DataClient

    grant = _grant(api, node, ["write"], [key.tag])
    with DataClient(grant["location"], grant["token"]) as client:
        return client.upload(reader, key.tag, key.name, replace=replace,
                             metadata={LABEL_METADATA: label} if label else None)


def rm(api: ApiClient, node: str, dataset_id: str) -> dict[str, Any]:
    """Delete data set ``<tag>/<name>`` from ``node``; return its former manifest."""
    try:
        key = DatasetKey.parse(dataset_id)
    except ValueError as exc:
        raise FlopsError(str(exc)) from None
    from flops_dataplane.client import DataClient

    grant = _grant(api, node, ["drop"], [key.tag])
    with DataClient(grant["location"], grant["token"]) as client:
        return client.drop(key.dataset_id)


def listing(api: ApiClient, node: str | None) -> Iterator[dict[str, Any]]:
    """Every data set of your nodes (of ``node`` only when given), as last reported."""
    nodes = [api.request("GET", f"nodes/{node}")] if node else api.request("GET", "nodes")[
        "items"]
    for found in nodes:
        for dataset in found["datasets"]:
            yield {"node": found["name"], **dataset}


def _run(args: argparse.Namespace) -> int:
    try:
        api = connect(args.data_dir)
        if args.data_command == "push":
            manifest = push(api, args.node, args.tag, args.file, name=args.name,
                            label=args.label, replace=args.replace)
            print(json.dumps(manifest) if args.json else
                  f"pushed {manifest['id']} to {args.node}: {manifest['rows']} rows, "
                  f"{manifest['bytes']} bytes")
        elif args.data_command == "rm":
            manifest = rm(api, args.node, args.dataset)
            print(json.dumps(manifest) if args.json else f"removed {manifest['id']} from "
                  f"{args.node}")
        else:
            rows = list(listing(api, args.node))
            if args.json:
                print(json.dumps(rows))
            for row in [] if args.json else rows:
                print(f"{row['node']:16} {row['tag']}/{row['name']:24} {row['rows']:>9} rows "
                      f"{row['bytes']:>11} B  schema {row['schema_fingerprint']}")
    except (FlopsError, DataPlaneError) as exc:
        print(f"flops data {args.data_command}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``flops data``."""
    parser = sub.add_parser("data", help="your data sets on your FLOps nodes")
    parser.add_argument("--data-dir", dest="data_dir", type=Path,
                        help="data directory of the `flops up` stack")
    commands = parser.add_subparsers(dest="data_command", required=True)
    push_p = commands.add_parser("push", help="stream a CSV or Parquet file to a node")
    push_p.add_argument("--node", required=True)
    push_p.add_argument("--tag", required=True)
    push_p.add_argument("--name", help="data set name (default: the file's name)")
    push_p.add_argument("--label", help="label column (the node reports its histogram)")
    push_p.add_argument("--replace", action="store_true", help="replace a data set of that name")
    push_p.add_argument("file", type=Path)
    ls_p = commands.add_parser("ls", help="list data sets on your nodes")
    ls_p.add_argument("--node")
    rm_p = commands.add_parser("rm", help="delete a data set from a node")
    rm_p.add_argument("--node", required=True)
    rm_p.add_argument("dataset", help="<tag>/<name>")
    for p in (push_p, ls_p, rm_p):
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=_run)
