"""Data-plane throughput: upload/download of a 1M-row table over loopback vs local Parquet.

Run: ``python bench/dataplane_throughput.py [--rows N] [--repeat R]``. Prints a JSON report with
MB/s (of the in-memory Arrow size) and rows/s for each operation, and the ratio of each Flight
operation's speed to the local Parquet write/read of the same table (best of R runs).

It also times what a learner does, reading a data set into numpy columns: pyarrow's Flight
client and ``to_numpy`` per column (what learners did before) against
``flops_dataplane.flight_reader`` (grpcio and numpy only, what they do now).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flops_dataplane.client import DataClient
from flops_dataplane.flight_reader import FlightReader
from flops_dataplane.server import DataServer


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {f"x{i}": rng.normal(size=rows) for i in range(8)}
    columns["label"] = rng.integers(0, 10, size=rows)
    return pa.table(columns)


def best_of(repeat: int, action: Callable[[int], Any]) -> float:
    times = []
    for attempt in range(repeat):
        start = time.perf_counter()
        action(attempt)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = make_table(args.rows)
    megabytes = table.nbytes / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "local"
        local.mkdir()
        server = DataServer(Path(tmp) / "server", port=0)
        client = DataClient(server.location, timeout_s=600)
        results = {
            "local_write": best_of(args.repeat,
                                   lambda i: pq.write_table(table, local / f"{i}.parquet")),
            "local_read": best_of(args.repeat, lambda i: pq.read_table(local / f"{i}.parquet")),
            "flight_upload": best_of(args.repeat,
                                     lambda i: client.upload(table, "bench", f"run-{i}")),
        }
        results["flight_download"] = best_of(
            args.repeat, lambda i: client.read_datasets([client.describe(f"bench/run-{i}")])
        )
        assert client.read_datasets([client.describe("bench/run-0")]).equals(table)

        def arrow_columns(i: int) -> dict[str, Any]:
            read = client.read_datasets([client.describe(f"bench/run-{i}")])
            return {n: read.column(n).to_numpy() for n in read.column_names}

        with FlightReader(server.location, timeout_s=600) as reader:
            def numpy_columns(i: int) -> dict[str, Any]:
                return reader.read_columns([client.describe(f"bench/run-{i}")])[1]

            results["learner_read_pyarrow"] = best_of(args.repeat, arrow_columns)
            results["learner_read_numpy"] = best_of(args.repeat, numpy_columns)
            ours, theirs = numpy_columns(0), arrow_columns(0)
            assert all(np.array_equal(ours[n], theirs[n]) for n in theirs)
        client.close()
        server.shutdown()
    report: dict[str, Any] = {
        "rows": args.rows,
        "arrow_mb": round(megabytes, 1),
        "cpus": os.cpu_count(),
        "seconds": {k: round(v, 3) for k, v in results.items()},
        "mb_per_s": {k: round(megabytes / v, 1) for k, v in results.items()},
        "rows_per_s": {k: round(args.rows / v) for k, v in results.items()},
        "ratio_vs_local": {
            "upload_vs_local_write": round(results["local_write"] / results["flight_upload"], 2),
            "download_vs_local_read": round(results["local_read"] / results["flight_download"], 2),
        },
        "learner_read_numpy_vs_pyarrow": round(
            results["learner_read_pyarrow"] / results["learner_read_numpy"], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
