"""The learner's pyarrow-free data reader against a real data server and real IPC streams.

Every decoded column is compared with what pyarrow itself makes of the same data
(``to_numpy(zero_copy_only=False)``), so the reader cannot drift from the format.
"""

from __future__ import annotations

import datetime
import io
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from flops_contracts.protowire import ProtoWireError, bytes_field, fields
from flops_dataplane.arrow_ipc import (
    UnsupportedArrowError,
    decode_batches,
    parse_message,
    read_stream,
)
from flops_dataplane.client import DataClient
from flops_dataplane.errors import DataAuthError, DataPlaneError
from flops_dataplane.flight_reader import FlightReader
from flops_dataplane.server import DataServer
from learner_base.data import load_data
from learner_base.model_manager import LearnerContext
from tests.dataplane.conftest import subprocess_env


def every_type(rows: int = 4) -> pa.Table:
    """A table with a column of each decoded type, nulls included."""
    day = datetime.date(2024, 2, 29)
    return pa.table({
        "f64": pa.array([1.5, None, 3.0, -0.0][:rows]),
        "f32": pa.array([1, 2, 3, 4][:rows], pa.float32()),
        "f16": pa.array(np.array([1, 2, 3, 4][:rows], dtype=np.float16)),
        "i64_nulls": pa.array([1, None, 3, 4][:rows]),
        "i8": pa.array([1, -2, 3, -128][:rows], pa.int8()),
        "u32": pa.array([1, 2, 3, 2**32 - 1][:rows], pa.uint32()),
        "flag": pa.array([True, None, False, True][:rows]),
        "text": pa.array(["a", None, "ccc", "ünï"][:rows]),
        "large_text": pa.array(["x", "y", "", "z"][:rows], pa.large_string()),
        "raw": pa.array([b"1", b"22", None, b""][:rows]),
        "day": pa.array([day] * rows),
        "stamp": pa.array([1, 2, None, 4][:rows], pa.timestamp("ms")),
        "took": pa.array([1, 2, 3, 4][:rows], pa.duration("us")),
        "pixels": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]][:rows],
                           pa.list_(pa.float64(), 2)),
        "ragged": pa.array([[1, 2], [], None, [4]][:rows]),
        "nothing": pa.array([None] * rows),
    })


def assert_same(expected: pa.Table, got: dict[str, Any]) -> None:
    assert list(got) == expected.column_names
    for name in expected.column_names:
        want = expected.column(name).to_numpy(zero_copy_only=False)
        if name == "pixels":  # a fixed-size list is a 2-D array here, rows of arrays there
            want = np.stack(list(want))
        assert got[name].dtype == want.dtype, name
        assert str(got[name].tolist()) == str(want.tolist()), name


def stream_of(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema,
                           options=pa.ipc.IpcWriteOptions(**options)) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_every_type_round_trips_through_a_data_server(server: DataServer) -> None:
    """Two data sets (one a slice: its buffers do not start at zero) read back as one."""
    table = every_type()
    with DataClient(server.location) as client:
        client.upload(table, "all", "a")
        client.upload(table.slice(1), "all", "b")
    with FlightReader(server.location) as reader:
        manifests = reader.list(["all"])
        schema, columns = reader.read_columns(manifests)
    assert_same(pa.concat_tables([table, table.slice(1)]), columns)
    assert [str(f) for f in schema][:3] == ["f64: double", "f32: float", "f16: halffloat"]
    assert "pixels: fixed_size_list[2]<item: double>" in [str(f) for f in schema]


def test_load_data_gives_numpy_columns_and_conversions(server: DataServer) -> None:
    table = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": [1, 2, 3, 4], "label": [0, 1, 0, 1],
                      "split": ["train", "train", "test", "train"]})
    with DataClient(server.location) as client:
        client.upload(table, "t", "n")
    data = load_data(LearnerContext(data_tags=("t",), data_server=server.location))
    assert data.column_names == ["a", "b", "label", "split"] and data.num_rows == 4
    train, test = data.train_test()
    x, y = train.to_numpy()
    assert x.tolist() == [[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]] and y is not None
    assert y.tolist() == [0, 1, 1] and test.num_rows == 1
    assert data.to_arrow().equals(table)
    assert data.to_pandas()["b"].tolist() == [1, 2, 3, 4]


def test_a_learner_reads_its_data_without_pyarrow(server: DataServer) -> None:
    """The learner process cannot import pyarrow at all and still gets its data."""
    with DataClient(server.location) as client:
        client.upload(pa.table({"x": [1.0, 2.0], "label": [1, 0]}), "t", "n")
    probe = (
        "import sys\n"
        "class NoArrow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pyarrow':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoArrow())\n"
        "from learner_base.data import load_data\n"
        "from learner_base.model_manager import LearnerContext\n"
        f"data = load_data(LearnerContext(data_tags=('t',), data_server={server.location!r}))\n"
        "x, y = data.to_numpy()\n"
        "print(x.tolist(), y.tolist(), 'pyarrow' in sys.modules)\n"
        "try:\n"
        "    data.to_arrow()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    lines = out.stdout.splitlines()
    assert lines[:1] == ["[[1.0], [2.0]] [1, 0] False"], out.stderr
    assert "add pyarrow to the repository's requirements.txt" in lines[1]


def test_dictionary_columns_decode_from_their_dictionary_batch() -> None:
    table = pa.table({"kind": pa.array(["p", None, "q", "p"]).dictionary_encode(),
                      "n": [1, 2, 3, 4]})
    fields, batches = decode_batches(read_stream(stream_of(table)))
    assert fields[0].dictionary is not None and str(fields[0].type) == "string"
    assert batches[0]["kind"].tolist() == ["p", None, "q", "p"]
    assert batches[0]["n"].tolist() == [1, 2, 3, 4]


def test_unsupported_types_and_compression_say_what_to_do() -> None:
    nested = pa.table({"point": pa.array([{"x": 1, "y": 2}])})
    with pytest.raises(UnsupportedArrowError) as info:
        decode_batches(read_stream(stream_of(nested)))
    assert "column 'point' has Arrow type struct" in str(info.value)
    assert "data.to_arrow()" in str(info.value)
    with pytest.raises(UnsupportedArrowError, match="compressed record batch"):
        decode_batches(read_stream(stream_of(pa.table({"x": [1.0] * 100}),
                                              compression="zstd")))
    with pytest.raises(UnsupportedArrowError, match="not an Arrow IPC message"):
        parse_message(b"\x01\x02")
    schema, batch = list(read_stream(stream_of(pa.table({"x": [1.0, 2.0, 3.0]}))))
    with pytest.raises(UnsupportedArrowError, match="malformed Arrow record_batch message"):
        decode_batches([schema, parse_message(batch.header.buf, batch.body[:8])])


def test_refused_token_unreachable_server_and_bad_location(
    start_server: Callable[..., DataServer],
) -> None:
    server = start_server(token="right")
    with pytest.raises(DataAuthError, match="refused"):
        FlightReader(server.location, "wrong").list(["t"])
    with pytest.raises(DataAuthError):
        FlightReader(server.location, "").list(["t"])
    port = server.port
    server.shutdown()
    with pytest.raises(DataPlaneError, match=r"cannot reach|took longer"):
        FlightReader(f"grpc://127.0.0.1:{port}", "right", timeout_s=3).list(["t"])
    with pytest.raises(DataPlaneError, match="must be grpc://host:port"):
        FlightReader("http://example.org/data")


def test_protobuf_fields_round_trip_and_truncation_is_an_error() -> None:
    message = bytes_field(2, b"header") + b"\x08\x96\x01" + bytes_field(1000, b"x" * 300)
    decoded = fields(message)
    assert bytes(decoded[2]) == b"header" and bytes(decoded[1000]) == b"x" * 300
    assert decoded[1] == 150
    with pytest.raises(ProtoWireError, match="truncated"):
        fields(message[:-1])
