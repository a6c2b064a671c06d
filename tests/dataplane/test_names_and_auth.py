from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flops_dataplane.client import DataClient
from flops_dataplane.errors import DataAuthError, DataPlaneError
from flops_dataplane.names import DatasetKey, inside_root, parquet_path
from flops_dataplane.protocol import commit_message
from flops_dataplane.server import DataServer

BAD_TAGS = ["../x", "..", "a/b", "/abs", "a\x00b", "t" * 129, ".hidden", ""]
BAD_NAMES = ["../x", "a/b", "n\x00", "n" * 64, "..", ".tmp"]


def all_files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_bad_tags_rejected_and_nothing_written(
    tmp_path: Path, start_server: Callable[..., DataServer], tag: str
) -> None:
    server = start_server(root=tmp_path / "root")
    before = all_files(tmp_path)
    with DataClient(server.location) as client:
        with pytest.raises(DataPlaneError, match=r"data tag .* is invalid"):
            client.upload(pa.table({"x": [1]}), tag, "name")
        if tag:
            with pytest.raises(DataPlaneError, match="invalid"):
                client.list([tag])
    assert all_files(tmp_path) == before == ["root", "root/.tmp"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_rejected_and_nothing_written(
    tmp_path: Path, start_server: Callable[..., DataServer], name: str
) -> None:
    server = start_server(root=tmp_path / "root")
    with DataClient(server.location) as client:
        with pytest.raises(DataPlaneError, match=r"data set name .* is invalid"):
            client.upload(pa.table({"x": [1]}), "tag", name)
        with pytest.raises(DataPlaneError, match="invalid"):
            client.describe(f"tag/{name}")
        with pytest.raises(DataPlaneError, match="invalid"):
            client.drop(f"tag/{name}")
    assert all_files(tmp_path) == ["root", "root/.tmp"]


def test_raw_path_descriptors_with_traversal_rejected(
    tmp_path: Path, start_server: Callable[..., DataServer]
) -> None:
    server = start_server(root=tmp_path / "root")
    raw = flight.connect(server.location)
    table = pa.table({"x": [1]})
    for path in (["..", "x"], ["ok", "../../escape"], ["a", "b", "c"], ["ok\x00", "x"]):
        writer, _ = raw.do_put(flight.FlightDescriptor.for_path(*path), table.schema)
        with pytest.raises(flight.FlightServerError, match=r"invalid|must be"):
            writer.write_table(table)
            writer.write_metadata(pa.py_buffer(commit_message(1)))
            writer.close()
    with pytest.raises(flight.FlightServerError, match="invalid"):
        raw.do_get(flight.Ticket(b"../../etc/passwd")).read_all()
    with pytest.raises(flight.FlightServerError, match="invalid"):
        raw.get_flight_info(flight.FlightDescriptor.for_path("..", "x"))
    assert all_files(tmp_path) == ["root", "root/.tmp"]


def test_symlinked_tag_directory_cannot_escape_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "evil")
    with pytest.raises(ValueError, match="outside the data root"):
        parquet_path(root, DatasetKey("evil", "x"))
    with pytest.raises(ValueError, match="outside the data root"):
        inside_root(root, root)
    assert parquet_path(root, DatasetKey("fine", "x")) == (root / "fine" / "x.parquet").resolve()


def test_token_required_when_configured(start_server: Callable[..., DataServer]) -> None:
    server = start_server(token="s3cret")
    with DataClient(server.location, token="s3cret") as client:
        assert client.upload(pa.table({"x": [1]}), "t", "n")["rows"] == 1
        assert [m["id"] for m in client.list(["t"])] == ["t/n"]
    with DataClient(server.location) as anonymous:
        with pytest.raises(DataAuthError, match="missing 'authorization: Bearer"):
            anonymous.list()
        with pytest.raises(DataAuthError):
            anonymous.upload(pa.table({"x": [2]}), "t", "other")
    with DataClient(server.location, token="wrong") as wrong:
        with pytest.raises(DataAuthError, match="invalid data server token"):
            wrong.read(["t"])
        with pytest.raises(DataAuthError):
            wrong.drop("t/n")
    raw = flight.connect(server.location)
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(raw.list_actions())
    with DataClient(server.location, token="s3cret") as client:
        assert [m["id"] for m in client.list()] == ["t/n"]


def test_token_read_from_environment(
    start_server: Callable[..., DataServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(token="from-env")
    monkeypatch.setenv("FLOPS_DATA_TOKEN", "from-env")
    with DataClient(server.location) as client:
        assert client.list() == []
