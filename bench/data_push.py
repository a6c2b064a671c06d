"""``flops data push`` to a FLOps node vs a local Parquet write of the same table, side by side.

Run: ``python bench/data_push.py [--rows N] [--repeat R]``. A manager (in this process, memory
store) and a node agent (its data server in this process too, on loopback) are started; each
repetition writes the table to a local Parquet file (the baseline), then pushes that file with
:func:`flops_manager.cli.data.push` (the CLI's path: a data grant from the manager, then the file
streamed batch by batch to the node, which writes it, hashes it and commits it). The two
alternate; the report (JSON) gives the best and median seconds of each and the push's speed as
a fraction of the local write's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
from werkzeug.serving import make_server

from flops_dataplane.node_agent import NodeAgentSettings, start_agent
from flops_manager.adapters.memory_node_store import MemoryNodeStore
from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
from flops_manager.adapters.memory_store import MemoryProjectStore
from flops_manager.app import create_app
from flops_manager.cli import data
from flops_manager.cli.client import ApiClient
from flops_manager.settings import Settings

TOKEN = "tok-bench"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository, so that bench.* imports as a script too

from bench.dataplane_throughput import make_table  # noqa: E402 - the same table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = make_table(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(api_tokens=json.dumps({TOKEN: "bench"}), store_uri="memory://",
                            orchestrator_uri="memory://", data_dir=str(root / "manager"))
        app = create_app(settings, store=MemoryProjectStore(), orchestrator=MemoryOrchestrator(),
                         nodes=MemoryNodeStore())
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api = ApiClient(f"http://127.0.0.1:{server.server_port}", TOKEN, timeout_s=600)
        token = api.request("POST", "nodes/bench-node/token")["token"]
        agent = start_agent(NodeAgentSettings(name="bench-node", data_dir=root / "node",
                                              manager_url=api.base_url),
                            {"FLOPS_NODE_TOKEN": token})
        threading.Thread(target=agent.run, daemon=True).start()
        local: list[float] = []
        pushed: list[float] = []
        try:
            for attempt in range(args.repeat):
                path = root / f"local-{attempt}.parquet"
                start = time.perf_counter()
                pq.write_table(table, path)
                local.append(time.perf_counter() - start)
                start = time.perf_counter()
                data.push(api, "bench-node", "bench", path, name=f"run-{attempt}")
                pushed.append(time.perf_counter() - start)
        finally:
            agent.stop()
            server.shutdown()
    megabytes = table.nbytes / 1e6
    report = {
        "rows": args.rows, "arrow_mb": round(megabytes, 1), "repeat": args.repeat,
        "local_write_s": {"best": round(min(local), 3),
                          "median": round(statistics.median(local), 3)},
        "data_push_s": {"best": round(min(pushed), 3),
                        "median": round(statistics.median(pushed), 3)},
        "local_write_mb_s": round(megabytes / min(local), 1),
        "data_push_mb_s": round(megabytes / min(pushed), 1),
        "push_speed_vs_local_write": round(min(local) / min(pushed), 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
