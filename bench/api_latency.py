"""API latency and throughput with 10k or 100k projects in nx-27017 (loopback, threaded load).

Usage: python bench/api_latency.py [--projects 10000] [--threads 8] [--requests 2000]

Requests: one project by id; a listing with keyset cursors (``cursor=``, pages starting at every
depth of the owner's projects); as its baseline in the same run, the offset listing (``page=N``,
pages 1-50, counting the total) the API had before.

The manager's app (waitress, ``flops_manager.api_server``) runs in its own process, so the load
generator's threads do not share its interpreter lock. Two such servers run on the same
database: one with the store's current queries and one with its queries as they were before
(implicit equality, which nx-27017 answers with a full scan: see
``flops_manager.adapters.indexed_query``); every request type runs against both in turn.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import requests

from flops_manager.adapters.mongo_store import MongoProjectStore
from flops_manager.adapters.nx_launcher import EmbeddedMongo
from flops_manager.lifecycle.state import Project
from flops_manager.ports.cursor import Cursor, encode_cursor

REQUEST_TIMEOUT_S = 30.0
"""A request taking longer fails; failed requests count as infinitely slow."""

QUERIES = ("$eq queries (now)", "implicit equality (before)")
"""The store's filters now and before, one API server process each."""


def seed(store: MongoProjectStore, count: int) -> list[Project]:
    """Insert ``count`` projects, every tenth owned by alice; return alice's."""
    mine = []
    now = time.time()
    coll = store._projects  # bulk insert for speed; documents as the store writes them
    store._init()
    batch = []
    for i in range(count):
        owner = "alice" if i % 10 == 0 else f"user{i % 97}"
        p = Project(id="p" + uuid.uuid4().hex[:16], owner=owner, spec={"training": {}},
                    repository={"url": "https://h/u/r"}, created_at=now + i, updated_at=now + i,
                    version=1)
        doc = p.to_doc()
        doc["event_seq"] = 0
        batch.append(doc)
        if owner == "alice":
            mine.append(p)
        if len(batch) == 500:
            coll.insert_many(batch)
            batch = []
    if batch:
        coll.insert_many(batch)
    return mine


def cursor_paths(mine: list[Project], samples: int = 200) -> list[str]:
    """Keyset listing pages starting at evenly spread depths of alice's projects."""
    step = max(1, len(mine) // samples)
    tokens = [encode_cursor(Cursor(p.created_at, p.id)) for p in mine[::step]]
    return [f"/api/v1/projects?page_size=20&cursor={t}" for t in ["", *tokens]]


def serve(url: str, queries: str, conn: Connection) -> None:
    """Child process: the manager's app on a free port; send the port, run until told."""
    from flops_manager.adapters import mongo_store
    from flops_manager.adapters.memory_orchestrator import MemoryOrchestrator
    from flops_manager.api_server import ApiServer
    from flops_manager.app import create_app
    from flops_manager.settings import Settings

    if queries != QUERIES[0]:
        mongo_store.indexable = lambda query: query  # type: ignore[attr-defined]
    settings = Settings(api_tokens='{"bench": "alice"}', mongo_url=url)
    app = create_app(settings, store=MongoProjectStore(url), orchestrator=MemoryOrchestrator())
    server = ApiServer(app, host="127.0.0.1", port=0, threads=settings.api_threads)
    threading.Thread(target=server.serve, daemon=True).start()
    while server.port == 0:
        time.sleep(0.05)
    conn.send(server.port)
    conn.recv()


def run(url: str, paths: list[str], threads: int, total: int, max_s: float) -> dict[str, float]:
    """``total`` GETs of ``paths`` (round robin) from ``threads`` clients; latency summary."""
    latencies: list[float] = []
    failed: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.monotonic() + max_s

    def worker() -> None:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer bench"
        for n in counter:
            if time.monotonic() > deadline:
                return
            start = time.perf_counter()
            try:
                r = session.get(url + paths[n % len(paths)], timeout=REQUEST_TIMEOUT_S)
            except requests.Timeout:
                r = None
            elapsed = time.perf_counter() - start
            with lock:
                if r is None or r.status_code != 200:
                    said = r.text[:80] if r is not None else "timeout"
                    failed.append(f"{elapsed:.1f} s: {said}")
                else:
                    latencies.append(elapsed)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    if failed:
        print(f"  {len(failed)} failed requests, e.g. {failed[0]}")
    latencies += [float("inf")] * len(failed)  # a failed request counts as slowest
    if not latencies:
        latencies = [float("inf")]
    return {
        "requests": len(latencies),
        "failed": len(failed),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "rps": (len(latencies) - len(failed)) / wall,
    }


def start_servers(url: str) -> tuple[dict[str, int], list[Any]]:
    """One server process per query style; their ports and the stop handles."""
    ctx = multiprocessing.get_context("spawn")
    ports: dict[str, int] = {}
    handles: list[Any] = []
    for queries in QUERIES:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=serve, args=(url, queries, child), daemon=True)
        process.start()
        if not parent.poll(120):
            raise SystemExit("the API server did not start")
        ports[queries] = parent.recv()
        handles.append((process, parent))
    return ports, handles


@dataclasses.dataclass(frozen=True)
class BenchStack:
    """A seeded database with one API server process per query style."""

    mine: list[Project]
    """The benchmark user's projects."""
    ports: dict[str, int]
    """Server port per query style (``QUERIES``)."""
    pids: list[int]
    """Server process ids, in ``QUERIES`` order."""


@contextlib.contextmanager
def bench_stack(projects: int) -> Iterator[BenchStack]:
    """Start nx-27017, seed ``projects`` projects, start the servers; stop all on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        embedded = EmbeddedMongo(tmp)
        url = embedded.start()
        try:
            store = MongoProjectStore(url)
            t0 = time.perf_counter()
            mine = seed(store, projects)
            print(f"seeded {projects} projects in {time.perf_counter() - t0:.1f} s")
            ports, handles = start_servers(url)
            yield BenchStack(mine, ports, [process.pid for process, _ in handles])
            for process, conn in handles:
                conn.send("stop")
                process.join(10)
            store.close()
        finally:
            embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with bench_stack(args.projects) as stack:
        for name, paths in [
            ("GET project", [f"/api/v1/projects/{p.id}" for p in stack.mine]),
            ("list, keyset cursor (page_size=20, any depth)", cursor_paths(stack.mine)),
            ("list, offset page=1..50 (page_size=20, baseline)",
             [f"/api/v1/projects?page={1 + i % 50}&page_size=20" for i in range(50)]),
        ]:
            for queries, port in stack.ports.items():
                result = run(f"http://127.0.0.1:{port}", paths, args.threads, args.requests,
                             args.max_seconds)
                print(f"{name} [{queries}]: {result['requests']:.0f} requests "
                      f"({result['failed']:.0f} failed), p50 {result['p50_ms']:.1f} ms, p99 "
                      f"{result['p99_ms']:.1f} ms, {result['rps']:.0f} req/s", flush=True)


if __name__ == "__main__":
    main()
