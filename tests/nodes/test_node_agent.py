"""Node agents enroll, report their inventory, and serve `flops data` directly (real parts)."""

from __future__ import annotations

import csv
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from flops_contracts.errors import ConfigError, FlopsError
from flops_dataplane.client import DataClient
from flops_dataplane.errors import DataPlaneError
from flops_dataplane.node_agent import NodeAgentSettings, start_agent
from flops_manager.cli import data as data_cli
from flops_manager.cli.client import ApiClient, ApiError
from tests.fixtures.servers import wait_for
from tests.nodes.conftest import StartNode


def write_csv(path: Path, rows: list[tuple[int, float, int]],
              header: tuple[str, ...] = ("id", "x", "label")) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def node_view(client: ApiClient, name: str) -> dict[str, Any]:
    view = client.request("GET", f"nodes/{name}")
    assert isinstance(view, dict)
    return view


def test_enroll_report_and_owner_scope(start_node: StartNode, alice: ApiClient,
                                       bob: ApiClient, tmp_path: Path) -> None:
    agent = start_node("edge-1", cluster="lab")
    wait_for(lambda: node_view(alice, "edge-1")["status"] == "online", timeout=10)
    view = node_view(alice, "edge-1")
    assert view["cluster"] == "lab" and view["platform"].startswith("linux/")
    assert view["location"] == agent.location and view["last_seen"] is not None
    assert [n["name"] for n in alice.request("GET", "nodes")["items"]] == ["edge-1"]
    # the credentials are kept (0600) so a restart needs no token; the token is spent
    state = tmp_path / "edge-1" / "node.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    # another user sees nothing of it
    assert bob.request("GET", "nodes")["items"] == []
    with pytest.raises(ApiError) as info:
        node_view(bob, "edge-1")
    assert info.value.details["status"] == 404
    with pytest.raises(ApiError) as info:
        bob.request("POST", "nodes/edge-1/data-grant", json={"ops": ["read"]})
    assert info.value.details["status"] == 404


def test_a_stopping_agent_says_goodbye_and_is_offline_at_once(
        manager: str, alice: ApiClient, tmp_path: Path) -> None:
    """A cleanly stopped agent is offline at once (no placement on it), not after three
    missed reports; its next report brings it back online."""
    token = alice.request("POST", "nodes/edge-7/token")["token"]
    settings = NodeAgentSettings(name="edge-7", data_dir=tmp_path / "edge-7",
                                 manager_url=manager, report_interval_s=3600)
    agent = start_agent(settings, {"FLOPS_NODE_TOKEN": token})
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    wait_for(lambda: node_view(alice, "edge-7")["status"] == "online", timeout=10)
    agent.stop()
    thread.join(10)
    # an hour-long interval: without the goodbye it would stay online for three hours
    assert node_view(alice, "edge-7")["status"] == "offline"
    again = start_agent(settings, {})
    try:
        assert again.report()
        assert node_view(alice, "edge-7")["status"] == "online"
    finally:
        again.server.shutdown()


def test_node_token_single_use_and_bound_to_name(manager: str, alice: ApiClient,
                                                 tmp_path: Path) -> None:
    token = alice.request("POST", "nodes/n-a/token")["token"]
    wrong = NodeAgentSettings(name="n-b", data_dir=tmp_path / "b", manager_url=manager)
    with pytest.raises(ConfigError, match="is for node 'n-a'"):
        start_agent(wrong, {"FLOPS_NODE_TOKEN": token})
    right = NodeAgentSettings(name="n-a", data_dir=tmp_path / "a", manager_url=manager)
    with pytest.raises(ConfigError, match="already used"):  # the failed try spent it
        start_agent(right, {"FLOPS_NODE_TOKEN": token})
    with pytest.raises(ConfigError, match="has not enrolled yet"):
        start_agent(right, {})
    with pytest.raises(ApiError) as info:
        alice.request("POST", "nodes/..%2Fetc/token")
    assert info.value.details["status"] in (404, 422)


def test_push_ls_rm(start_node: StartNode, alice: ApiClient, tmp_path: Path) -> None:
    agent = start_node("edge-1")
    wait_for(lambda: node_view(alice, "edge-1")["location"], timeout=10)
    source = write_csv(tmp_path / "part-0.csv", [(i, i / 10, i % 3) for i in range(300)])
    manifest = data_cli.push(alice, "edge-1", "digits", source, label="label")
    assert manifest["id"] == "digits/part-0" and manifest["rows"] == 300

    def reported() -> list[dict[str, Any]]:
        return list(data_cli.listing(alice, "edge-1"))

    wait_for(lambda: reported(), timeout=10)
    [entry] = reported()
    assert entry["tag"] == "digits" and entry["rows"] == 300
    assert entry["label_histogram"] == {"0": 100, "1": 100, "2": 100}
    assert len(entry["schema_fingerprint"]) == 16
    # the bytes live under the node's own directory only
    assert (tmp_path / "edge-1" / "data" / "digits" / "part-0.parquet").is_file()
    # every access is recorded with who did it
    records = agent.server.access.read()
    assert {"sub": "user:alice", "op": "write", "target": "digits/part-0"}.items() <= \
        records[-1].items()
    data_cli.rm(alice, "edge-1", "digits/part-0")
    wait_for(lambda: reported() == [], timeout=10)


def test_bad_pushes(start_node: StartNode, alice: ApiClient, tmp_path: Path) -> None:
    start_node("edge-1")
    wait_for(lambda: node_view(alice, "edge-1")["location"], timeout=10)
    good = write_csv(tmp_path / "a.csv", [(1, 0.5, 0), (2, 0.25, 1)])
    data_cli.push(alice, "edge-1", "t", good)
    # unknown node
    with pytest.raises(ApiError, match="node 'nowhere' not found"):
        data_cli.push(alice, "nowhere", "t", good)
    # schema differs from the tag's existing data: refused, naming both schemas
    other = write_csv(tmp_path / "b.csv", [(1, 2, 3)], header=("id", "y", "label"))
    with pytest.raises(DataPlaneError, match="differs from tag 't'"):
        data_cli.push(alice, "edge-1", "t", other)
    # traversal names never reach the node
    for tag, name in (("../etc", None), ("t", "../../x"), ("t", "a/b")):
        with pytest.raises(FlopsError, match="invalid"):
            data_cli.push(alice, "edge-1", tag, good, name=name)
    with pytest.raises(ApiError) as info:
        alice.request("POST", "nodes/edge-1/data-grant", json={"ops": ["write"],
                                                              "tags": ["../x"]})
    assert info.value.details["status"] == 422
    # mock data tags are the projects' (a node drops them when the project ends): no user write
    for tags in (["mock-p0123456789abcdef"], ["*"]):
        with pytest.raises(ApiError, match="cannot be written") as info:
            alice.request("POST", "nodes/edge-1/data-grant", json={"ops": ["write"],
                                                                  "tags": tags})
        assert info.value.details["status"] == 422
    with pytest.raises(ApiError, match="hold projects' mock data"):
        data_cli.push(alice, "edge-1", "mock-mine", good)
    # a write token does not allow reading, a token for one tag not another
    grant = alice.request("POST", "nodes/edge-1/data-grant", json={"ops": ["write"],
                                                                  "tags": ["t"]})
    with DataClient(grant["location"], grant["token"]) as client, \
            pytest.raises(DataPlaneError, match="does not allow read"):
        client.read(["t"])
    with DataClient(grant["location"], grant["token"]) as client, \
            pytest.raises(DataPlaneError, match="does not allow write on tag 'u'"):
        client.upload(pa.table({"id": [1]}), "u", "x")
    with DataClient(grant["location"], "fd1.forged.token") as client, \
            pytest.raises(DataPlaneError, match="refused"):
        client.list()


def test_interrupted_push_leaves_nothing_and_old_data_intact(
        start_node: StartNode, alice: ApiClient, tmp_path: Path) -> None:
    agent = start_node("edge-1")
    wait_for(lambda: node_view(alice, "edge-1")["location"], timeout=10)
    data_cli.push(alice, "edge-1", "t", write_csv(tmp_path / "d.csv",
                                                  [(i, 1.0, 0) for i in range(10)]))
    parquet = tmp_path / "edge-1" / "data" / "t" / "d.parquet"
    before = parquet.read_bytes()
    grant = alice.request("POST", "nodes/edge-1/data-grant", json={"ops": ["write"],
                                                                  "tags": ["t"]})
    schema = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("label", pa.int64())])
    started = threading.Event()

    def batches() -> Iterator[pa.RecordBatch]:
        for i in range(5):
            yield pa.record_batch([pa.array([i] * 1000), pa.array([0.0] * 1000),
                                   pa.array([1] * 1000)], schema=schema)
            if i == 2:
                started.set()
                assert agent.server.store.active_uploads() == 1
                raise KeyboardInterrupt("the user pressed ^C halfway")

    with DataClient(grant["location"], grant["token"]) as client, \
            pytest.raises((KeyboardInterrupt, DataPlaneError)):  # the node's refusal may win
        client.upload(batches(), "t", "d", replace=True)
    assert started.is_set()
    assert agent.server.store.wait_active_uploads(0, timeout=10)
    assert parquet.read_bytes() == before  # old data intact
    assert os.listdir(tmp_path / "edge-1" / "data" / ".tmp") == []  # nothing left
    assert [m.rows for m in agent.server.store.list(["t"])] == [10]


def test_restart_reuses_credentials_and_keeps_data(manager: str, alice: ApiClient,
                                                   tmp_path: Path) -> None:
    token = alice.request("POST", "nodes/edge-9/token")["token"]
    settings = NodeAgentSettings(name="edge-9", data_dir=tmp_path / "edge-9",
                                 manager_url=manager, report_interval_s=0.2)
    first = start_agent(settings, {"FLOPS_NODE_TOKEN": token})
    assert first.report()
    data_cli.push(alice, "edge-9", "t", write_csv(tmp_path / "r.csv", [(1, 1.0, 1)]))
    first.server.shutdown()
    second = start_agent(settings, {})  # no token needed any more
    try:
        assert second.report()
        [entry] = list(data_cli.listing(alice, "edge-9"))
        assert entry["rows"] == 1
        assert json.loads((tmp_path / "edge-9" / "node.json").read_text())["owner"] == "alice"
    finally:
        second.server.shutdown()


def test_describe_needs_read_on_the_tag(start_node: StartNode, alice: ApiClient,
                                        tmp_path: Path) -> None:
    start_node("edge-1")
    wait_for(lambda: node_view(alice, "edge-1")["location"], timeout=10)
    data_cli.push(alice, "edge-1", "t", write_csv(tmp_path / "d.csv", [(1, 1.0, 0)]))
    other = alice.request("POST", "nodes/edge-1/data-grant", json={"ops": ["read"],
                                                                  "tags": ["u"]})
    with DataClient(other["location"], other["token"]) as client:
        with pytest.raises(DataPlaneError, match="does not allow read on tag 't'"):
            client.describe("t/d")
        assert client.list() == []  # tags it may not read are not listed
    mine = alice.request("POST", "nodes/edge-1/data-grant", json={"ops": ["read"],
                                                                 "tags": ["t"]})
    with DataClient(mine["location"], mine["token"]) as client:
        assert client.describe("t/d")["rows"] == 1


def test_push_parquet_and_refuse_other_files(start_node: StartNode, alice: ApiClient,
                                             tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    start_node("edge-1")
    wait_for(lambda: node_view(alice, "edge-1")["location"], timeout=10)
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": list(range(200_000)), "label": [i % 4 for i in
                                                                 range(200_000)]}), path)
    manifest = data_cli.push(alice, "edge-1", "p", path, label="label")
    assert manifest["id"] == "p/big" and manifest["rows"] == 200_000
    with pytest.raises(FlopsError, match=r"only .csv and .parquet"):
        data_cli.push(alice, "edge-1", "p", write_csv(tmp_path / "x.txt", [(1, 1.0, 1)]))
    with pytest.raises(FlopsError, match="label column 'nope' is not in"):
        data_cli.push(alice, "edge-1", "p", path, name="again", label="nope")
