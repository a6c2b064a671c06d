from __future__ import annotations

import signal
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pyarrow as pa

from flops_dataplane.client import DataClient
from flops_dataplane.server import DataServer
from tests.dataplane.conftest import REPO_ROOT, subprocess_env

UPLOADER = """
import sys, itertools
import numpy as np, pyarrow as pa
from flops_dataplane.client import DataClient

batch = pa.record_batch({"x": np.arange(50_000, dtype=np.float64)})

def batches():
    for i in itertools.count():
        if i == 20:
            print("streaming", flush=True)
        yield batch

DataClient(sys.argv[1], timeout_s=120).upload(batches(), "killed", "never")
"""


def test_two_concurrent_uploads_under_same_tag_both_land(server: DataServer) -> None:
    barrier = threading.Barrier(2)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def upload(offset: int) -> None:
        def batches() -> Any:
            barrier.wait(timeout=30)
            for i in range(40):
                yield pa.record_batch({"x": np.arange(5_000) + offset + i * 5_000})
        try:
            with DataClient(server.location) as client:
                results.append(client.upload(batches(), "shared"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(n * 1_000_000,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len({r["id"] for r in results}) == 2
    with DataClient(server.location) as client:
        listed = client.list(["shared"])
        assert sorted(m["id"] for m in listed) == sorted(r["id"] for r in results)
        assert all(m["rows"] == 200_000 for m in listed)
        values = client.read(["shared"]).column("x").to_numpy()
    expected = np.concatenate([np.arange(200_000), np.arange(200_000) + 1_000_000])
    assert np.array_equal(np.sort(values), expected)
    assert list(server.store.temp_dir.iterdir()) == []


def test_killed_uploader_leaves_nothing_behind(server: DataServer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, server.location],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=subprocess_env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "streaming"
        assert server.store.wait_active_uploads(1, timeout=30)
        assert len(list(server.store.temp_dir.iterdir())) == 1  # the upload is in progress
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert server.store.wait_active_uploads(0, timeout=60), "server never noticed the abort"
    assert server.store.list() == []
    assert list(server.store.temp_dir.iterdir()) == []
    assert not (server.store.root / "killed").exists() or not any(
        (server.store.root / "killed").iterdir()
    )


def test_stale_temp_files_removed_on_start(tmp_path: Any) -> None:
    root = tmp_path / "root"
    (root / ".tmp").mkdir(parents=True)
    (root / ".tmp" / "leftover.parquet.tmp").write_bytes(b"partial")
    server = DataServer(root, port=0)
    try:
        assert list((root / ".tmp").iterdir()) == []
    finally:
        server.shutdown()
