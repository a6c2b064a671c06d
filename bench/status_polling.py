"""Where the load scenario's status latency goes: 200 pollers of 20 projects' status.

Usage: python bench/status_polling.py [--clients 200] [--projects 20] [--seconds 20]
       [--processes 1 4]

The polling pattern of ``tests/reliability/test_load.py`` (each client: GET the status of one
project, wait 0.2 s, next project) against the manager's app (waitress) in its own process on
nx-27017, without the trainings. The same number of clients runs from 1 load-generator process
(as the test does: 200 threads in one interpreter) and then spread over several processes;
reported: latency as the clients see it and the manager's own time (``Server-Timing``).
``--profile DIR`` records the server process with py-spy (``--gil``: only the thread holding
the interpreter lock, i.e. where the server's CPU time goes) during each measurement and prints
the frames with the most samples.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository, so that bench.api_latency imports as a script too

from bench.api_latency import QUERIES, bench_stack  # noqa: E402


def poll(url: str, ids: list[str], clients: int, seconds: float, out: Any) -> None:
    """One load-generator process: ``clients`` polling threads for ``seconds``."""
    latencies: list[float] = []
    server_ms: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def client(worker: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer bench"
        n = worker
        while not done.is_set():
            t0 = time.monotonic()
            response = session.get(f"{url}/api/v1/projects/{ids[n % len(ids)]}", timeout=60)
            spent = float(response.headers.get("Server-Timing", "dur=-1").partition("dur=")[2])
            with lock:
                latencies.append(time.monotonic() - t0)
                server_ms.append(spent)
            n += 7
            done.wait(0.2)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    done.set()
    for thread in threads:
        thread.join(60)
    out.put((latencies, server_ms))


SHOWN = ("flops_manager/", "pymongo/synchronous/collection", "marshmallow/schema",
         "flask_smorest/", "json/")
"""Frames worth printing: FLOps' code, the store round trip, serialisation."""


def top_frames(collapsed: str, count: int = 12) -> list[tuple[str, float]]:
    """Frames of ``SHOWN`` modules by share of samples they appear in (py-spy raw format)."""
    seen: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        n = int(samples)
        total += n
        for frame in set(stack.split(";")):
            if any(module in frame for module in SHOWN):
                seen[frame] += n
    return [(frame, n / total) for frame, n in seen.most_common(count)] if total else []


def profiled(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start py-spy sampling process ``pid`` (GIL holder only) into ``out``."""
    return subprocess.Popen(
        [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
         "--pid", str(pid), "--duration", str(int(seconds)), "--gil",
         "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def measure(url: str, ids: list[str], clients: int, processes: int, seconds: float) -> str:
    """Run ``clients`` pollers spread over ``processes``; one summary line."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    share = [clients // processes + (i < clients % processes) for i in range(processes)]
    workers = [ctx.Process(target=poll, args=(url, ids, n, seconds, out)) for n in share]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    server_ms: list[float] = []
    for _ in workers:
        got_latencies, got_server = out.get(timeout=seconds + 180)
        latencies += got_latencies
        server_ms += got_server
    for worker in workers:
        worker.join(30)
    latencies.sort()
    server_ms.sort()

    def p99(values: list[float]) -> float:
        return values[int(0.99 * (len(values) - 1))]

    return (f"{clients} clients in {processes} process(es): {len(latencies)} requests "
            f"({len(latencies) / seconds:.0f}/s), client p50 "
            f"{1000 * statistics.median(latencies):.0f} ms, p99 {1000 * p99(latencies):.0f} ms; "
            f"in the manager p50 {statistics.median(server_ms):.1f} ms, p99 "
            f"{p99(server_ms):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="directory for py-spy profiles")
    args = parser.parse_args()
    with bench_stack(args.projects * 10) as stack:
        ids = [p.id for p in stack.mine]
        base = f"http://127.0.0.1:{stack.ports[QUERIES[0]]}"
        for repeat, processes in itertools.product(range(args.repeat), args.processes):
            spy = None
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                out = args.profile / f"status-{processes}p-{repeat}.txt"
                spy = profiled(stack.pids[0], args.seconds, out)
            print(measure(base, ids, args.clients, processes, args.seconds), flush=True)
            if spy is not None:
                spy.wait(60)
                for frame, share in top_frames(out.read_text()):
                    print(f"    {100 * share:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
