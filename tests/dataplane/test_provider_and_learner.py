from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flops_contracts.config import load_settings
from flops_contracts.errors import FlopsError
from flops_dataplane import mock_provider
from flops_dataplane.client import DataClient
from flops_dataplane.errors import NoDataError, SchemaMismatchError, SourceError
from flops_dataplane.mock_provider import MockProviderSettings, provide
from flops_dataplane.server import DataServer
from flops_dataplane.sources import load_source
from learner_base.data import load_data
from learner_base.model_manager import LearnerContext
from tests.dataplane.conftest import REPO_ROOT, subprocess_env


def test_mock_provider_main_to_three_servers_and_learners_read_back(
    start_server: Callable[..., DataServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    servers = [start_server(token="tok") for _ in range(3)]
    events = tmp_path / "events.jsonl"
    for key, value in {
        "FLOPS_DATASET": "sklearn:digits",
        "FLOPS_PARTITIONS": "3",
        "FLOPS_PARTITIONER": "dirichlet",
        "FLOPS_ALPHA": "0.5",
        "FLOPS_SEED": "4",
        "FLOPS_TEST_FRACTION": "0.25",
        "FLOPS_TAG": "digits",
        "FLOPS_SERVERS": json.dumps([s.location for s in servers]),
        "FLOPS_DATA_TOKEN": "tok",
        "FLOPS_EVENTS_URI": f"file://{events}",
        "FLOPS_PROJECT_ID": "p1",
    }.items():
        monkeypatch.setenv(key, value)
    assert mock_provider.main() == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    parts = summary["partitions"]
    assert [p["server"] for p in parts] == [s.location for s in servers]
    assert sum(p["rows"] for p in parts) == 1797 == summary["rows"]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [(e["component"], e["event"]) for e in lines]
    assert kinds.count(("mock_data_provider", "progress")) == 3
    assert kinds[-1] == ("mock_data_provider", "completed")

    for index, server in enumerate(servers):
        context = LearnerContext(
            learner_index=index, learner_count=3, data_tags=("digits",),
            data_server=server.location,
        )
        data = load_data(context, timeout_s=30)
        assert data.datasets == (f"digits/part-{index}",)
        assert data.num_rows == parts[index]["rows"]
        train, test = data.train_test()
        assert (train.num_rows, test.num_rows) == (parts[index]["train_rows"],
                                                    parts[index]["test_rows"])
        x, y = train.to_numpy()
        assert x.shape == (train.num_rows, 64) and x.dtype == np.float64
        assert y is not None
        labels = data.to_numpy()[1]
        assert labels is not None
        values, counts = np.unique(labels, return_counts=True)
        histogram = {str(k): int(v) for k, v in zip(values, counts, strict=True)}
        assert histogram == parts[index]["label_histogram"]
        assert list(data.to_pandas().columns)[-1] == "split"


def test_all_partitions_to_one_server_and_partition_filter(
    start_server: Callable[..., DataServer],
) -> None:
    server = start_server()
    settings = MockProviderSettings(
        dataset="iris", partitions=3, partitioner="iid", servers=[server.location], tag="iris"
    )
    summary = provide(settings)
    assert [p["id"] for p in summary["partitions"]] == ["iris/part-0", "iris/part-1", "iris/part-2"]
    context = LearnerContext(data_tags=("iris",), data_server=server.location)
    assert load_data(context).num_rows == 150
    assert load_data(context, partition=1).num_rows == summary["partitions"][1]["rows"]
    with pytest.raises(NoDataError, match=r"partition 7"):
        load_data(context, partition=7)
    provide(settings)  # re-running replaces the partitions
    assert load_data(context).num_rows == 150


def test_one_partition_per_provider_adds_up_to_the_split_of_one_provider(
    start_server: Callable[..., DataServer],
) -> None:
    """Providers on three nodes, each writing its own partition, give the same partitions as
    one provider writing all three (the same data set, partitioner and seed everywhere)."""
    whole, *nodes = (start_server() for _ in range(4))
    common = {"dataset": "iris", "partitions": 3, "partitioner": "dirichlet", "alpha": 0.5,
              "seed": 4, "tag": "iris"}
    together = provide(MockProviderSettings(**common, servers=[whole.location]))
    for index, node in enumerate(nodes):
        alone = provide(MockProviderSettings(**common, server=node.location, partition=index))
        (report,) = alone["partitions"]
        assert report["index"] == index and report["server"] == node.location
        expected = together["partitions"][index]
        assert (report["sha256"], report["label_histogram"]) == (
            expected["sha256"], expected["label_histogram"])
        listed = DataClient(node.location).list(["iris"])
        assert [m["id"] for m in listed] == [f"iris/part-{index}"]  # only its own partition
        assert listed[0]["metadata"]["label"] == "label"  # a node counts these labels
    with pytest.raises(FlopsError, match="FLOPS_PARTITION needs FLOPS_SERVER"):
        load_settings(MockProviderSettings, environ={"FLOPS_PARTITION": "0",
                                                     "FLOPS_SERVERS": "[\"x\"]"})
    with pytest.raises(FlopsError, match="not below FLOPS_PARTITIONS"):
        load_settings(MockProviderSettings, environ={"FLOPS_PARTITION": "3", "FLOPS_SERVER": "x",
                                                     "FLOPS_PARTITIONS": "3"})


def test_no_matching_tag_raises_no_data_error(server: DataServer) -> None:
    with DataClient(server.location) as client:
        client.upload(pa.table({"x": [1.0], "label": [0]}), "other", "n")
    context = LearnerContext(data_tags=("missing", "absent"), data_server=server.location)
    with pytest.raises(NoDataError) as info:
        load_data(context)
    assert str(info.value) == f"no data for tags ['missing', 'absent'] on {server.location}"
    assert isinstance(info.value, FlopsError)
    with pytest.raises(NoDataError, match="no data server configured"):
        load_data(LearnerContext(data_tags=("x",)))


def test_mixed_schemas_raise_clear_error(server: DataServer) -> None:
    with DataClient(server.location) as client:
        client.upload(pa.table({"x": [1.0], "label": [0]}), "mixed", "a")
        client.upload(pa.table({"x": ["text"], "label": [0]}), "mixed", "b")
    context = LearnerContext(data_tags=("mixed",), data_server=server.location)
    with pytest.raises(SchemaMismatchError) as info:
        load_data(context)
    message = str(info.value)
    assert "'mixed/a' and 'mixed/b'" in message
    assert "x: double" in message and "x: string" in message


def test_file_and_huggingface_sources(tmp_path: Path) -> None:
    table = pa.table({"f": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    pq.write_table(table, tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("f,y\n1.0,0\n2.0,1\n3.0,0\n")
    assert load_source(f"file:{tmp_path / 'd.parquet'}").equals(table)
    assert load_source(f"file:{tmp_path / 'd.csv'}").equals(table)
    with pytest.raises(SourceError, match="does not exist"):
        load_source("file:/nonexistent.csv")
    with pytest.raises(SourceError, match="unknown scikit-learn data set"):
        load_source("sklearn:mnist")
    assert "datasets" not in sys.modules
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="optional package 'datasets'"):
            load_source("hf:mnist")
    else:  # pragma: no cover - datasets installed: only check nothing was imported by default
        pass


def test_provider_label_column_and_settings_validation(
    tmp_path: Path, start_server: Callable[..., DataServer]
) -> None:
    server = start_server()
    pq.write_table(pa.table({"f": np.arange(40.0), "y": np.arange(40) % 4}), tmp_path / "d.parquet")
    settings = MockProviderSettings(
        dataset=f"file:{tmp_path / 'd.parquet'}", label_column="y", partitions=2,
        partitioner="label_skew", labels_per_partition=2, servers=[server.location], tag="f",
    )
    summary = provide(settings)
    assert [len(p["label_histogram"]) for p in summary["partitions"]] == [2, 2]
    with pytest.raises(FlopsError, match="label column 'label' not in the data"):
        provide(settings.model_copy(update={"label_column": "label"}))
    with pytest.raises(FlopsError, match="FLOPS_SERVERS"):
        load_settings(MockProviderSettings, environ={"FLOPS_PARTITIONS": "2"})
    with pytest.raises(FlopsError, match="FLOPS_TAG"):
        load_settings(MockProviderSettings, environ={"FLOPS_SERVERS": "[\"x\"]",
                                                     "FLOPS_TAG": "../x"})


@contextlib.contextmanager
def _serving(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m flops_dataplane serve``, once listening: the process and its location.

    Killed on the way out if it is still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flops_dataplane", "serve"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on grpc://127.0.0.1:")
        yield proc, line.removeprefix("listening on ")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_main_runs_as_module_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = subprocess_env(
        FLOPS_DATA_ROOT_DIR=str(tmp_path / "root"), FLOPS_DATA_PORT="0", FLOPS_DATA_TOKEN="t"
    )
    with _serving(env) as (proc, location):
        with DataClient(location, token="t", timeout_s=30) as client:
            assert client.upload(pa.table({"x": [1]}), "t", "n")["rows"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert (tmp_path / "root" / "t" / "n.manifest.json").is_file()


def test_server_stops_when_the_signal_lands_on_one_of_its_grpc_threads(tmp_path: Path) -> None:
    """The kernel gives a process's SIGTERM to any of its threads; sent here to a gRPC thread
    on purpose, it must still stop the server (an untimed wait in the main thread never ran
    the handler: a data server that ignored ``docker stop`` until it was killed)."""
    env = subprocess_env(FLOPS_DATA_ROOT_DIR=str(tmp_path / "root"), FLOPS_DATA_PORT="0")
    with _serving(env) as (proc, _):
        threads = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert threads, "the data server runs no other thread"
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(proc.pid, threads[-1], signal.SIGTERM) == 0, ctypes.get_errno()
        assert proc.wait(timeout=30) == 0


def test_server_main_reports_missing_root(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flops_dataplane.server"], capture_output=True, text=True,
        cwd=REPO_ROOT, env=subprocess_env(), timeout=60,
    )
    assert result.returncode == 2
    assert "FLOPS_DATA_ROOT_DIR" in result.stderr
