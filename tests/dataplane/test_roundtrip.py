from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from flops_dataplane.client import DataClient
from flops_dataplane.errors import DataPlaneError, NoDataError
from flops_dataplane.protocol import commit_message
from flops_dataplane.server import DataServer


def big_table(rows: int = 100_000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "x0": rng.normal(size=rows),
        "x1": rng.integers(0, 1_000_000, size=rows),
        "text": pa.array([f"row-{i}" for i in range(rows)]),
        "label": rng.integers(0, 10, size=rows),
    })


def test_round_trip_100k_rows_identical(server: DataServer) -> None:
    table = big_table()
    with DataClient(server.location) as client:
        manifest = client.upload(table, "digits", "part-0")
        assert manifest["rows"] == 100_000
        assert manifest["id"] == "digits/part-0"
        back = client.read(["digits"])
        streamed = pa.Table.from_batches(list(client.iter_batches(["digits"])))
    assert back.equals(table)
    assert streamed.equals(table)
    # the stored file is what the manifest says
    path = server.store.root / "digits" / "part-0.parquet"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["sha256"]
    assert path.stat().st_size == manifest["bytes"]
    assert pq.read_table(path).equals(table)


def test_list_by_tag_describe_and_drop(server: DataServer) -> None:
    small = pa.table({"x": [1.0, 2.0], "label": [0, 1]})
    with DataClient(server.location) as client:
        client.upload(small, "a", "one")
        client.upload(small, "a", "two")
        auto = client.upload(small, "b")
        assert auto["name"].startswith("ds-")
        assert [m["id"] for m in client.list(["a"])] == ["a/one", "a/two"]
        assert [m["id"] for m in client.list(["b"])] == [auto["id"]]
        assert len(client.list()) == 3
        assert client.list(["nothing"]) == []
        assert client.describe("a/one")["rows"] == 2
        assert client.drop("a/one")["id"] == "a/one"
        assert [m["id"] for m in client.list(["a"])] == ["a/two"]
        assert not (server.store.root / "a" / "one.parquet").exists()
        with pytest.raises(DataPlaneError, match="'a/one' not found"):
            client.describe("a/one")
        with pytest.raises(DataPlaneError, match="'a/one' not found"):
            client.drop("a/one")
        with pytest.raises(NoDataError, match=r"no data for tags \['zzz'\]"):
            client.read(["zzz"])


def test_existing_name_needs_replace(server: DataServer) -> None:
    with DataClient(server.location) as client:
        client.upload(pa.table({"x": [1]}), "t", "n")
        with pytest.raises(DataPlaneError, match="already exists"):
            client.upload(pa.table({"x": [2, 3]}), "t", "n")
        assert client.read(["t"]).column("x").to_pylist() == [1]
        client.upload(pa.table({"x": [2, 3]}), "t", "n", replace=True)
        assert client.read(["t"]).column("x").to_pylist() == [2, 3]
    assert list(server.store.temp_dir.iterdir()) == []


def test_raw_flight_path_descriptor_and_flight_info(server: DataServer) -> None:
    table = pa.table({"x": [1, 2, 3]})
    raw = flight.connect(server.location)
    writer, reader = raw.do_put(flight.FlightDescriptor.for_path("raw", "ds1"), table.schema)
    writer.write_table(table)
    writer.write_metadata(pa.py_buffer(commit_message(3)))
    writer.done_writing()
    assert json.loads(reader.read().to_pybytes())["id"] == "raw/ds1"
    writer.close()
    info = raw.get_flight_info(flight.FlightDescriptor.for_path("raw", "ds1"))
    assert info.total_records == 3
    assert info.schema.equals(table.schema)
    got = raw.do_get(info.endpoints[0].ticket).read_all()
    assert got.equals(table)
    assert {a.type for a in raw.list_actions()} == {"describe", "drop"}
    with pytest.raises(flight.FlightServerError, match="unknown action"):
        list(raw.do_action(flight.Action("explode", b"raw/ds1")))
    with pytest.raises(flight.FlightServerError, match="criteria must be JSON"):
        list(raw.list_flights(b"not json"))


def test_upload_without_commit_message_is_discarded(server: DataServer) -> None:
    table = pa.table({"x": [1, 2, 3]})
    raw = flight.connect(server.location)
    writer, _ = raw.do_put(flight.FlightDescriptor.for_path("raw", "nocommit"), table.schema)
    writer.write_table(table)
    with pytest.raises(flight.FlightServerError, match="without a commit message"):
        writer.close()
    assert server.store.list() == []
    assert list(server.store.temp_dir.iterdir()) == []
    assert not (server.store.root / "raw" / "nocommit.parquet").exists()


def test_upload_with_wrong_commit_count_is_discarded(server: DataServer) -> None:
    table = pa.table({"x": [1, 2, 3]})
    raw = flight.connect(server.location)
    writer, _ = raw.do_put(flight.FlightDescriptor.for_path("raw", "short"), table.schema)
    writer.write_table(table)
    writer.write_metadata(pa.py_buffer(commit_message(5)))
    with pytest.raises(flight.FlightServerError, match="commit says 5 rows but 3"):
        writer.close()
    assert server.store.list() == []
