"""Throughput and latency of ``/invocations``: FLOps' inference server vs ``mlflow models serve``.

Both servers serve the same registered digits model (SGDClassifier, 64 float features, logged
and registered with the aggregator's ``MlflowTracker`` into a SQLite store) as one process each,
on the same machine. The load generator runs ``--threads`` client threads (one
``requests.Session`` each) against one server at a time; every scenario is warmed up, then
measured for ``--seconds``, alternating between the servers ``--repeat`` times; medians are
reported.

Usage: python bench/inference_throughput.py [--threads 4] [--seconds 10] [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from flops_manager.local_processes import free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "bench-digits"
COLUMNS = [f"x{i}" for i in range(64)]


class DigitsManager:
    """The digits example's model, trained in-process (mlflow_flavor + get_model + example)."""

    mlflow_flavor = "sklearn"

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_model(self) -> Any:
        return self.model

    def input_example(self) -> Any:
        return np.zeros((2, 64))

    def pip_requirements(self) -> list[str] | None:
        return None


def register_model(tracking_uri: str) -> tuple[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier

    from aggregator.tracking import MlflowTracker

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    model = SGDClassifier(loss="log_loss", alpha=1e-4, learning_rate="constant", eta0=0.05,
                          random_state=0)
    for _ in range(20):
        model.partial_fit(x, y, classes=np.arange(10))
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment_name="bench-inference",
                            run_name="bench")
    tracker.start(params={}, tags={"flops.project_id": "bench"})
    info = tracker.log_model(DigitsManager(model), registered_model_name=MODEL_NAME,
                             tags={"flops.project_id": "bench"})
    tracker.finish()
    assert info.registry_uri is not None
    return info.registry_uri, x


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def load(url: str, body: bytes, *, threads: int, seconds: float,
         expect_rows: int) -> dict[str, float]:
    """Hammer ``url/invocations`` with ``body`` from ``threads`` sessions for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        session = requests.Session()
        session.headers["Content-Type"] = "application/json"
        mine: list[float] = []
        failed = 0
        while time.monotonic() < deadline:
            began = time.perf_counter()
            response = session.post(f"{url}/invocations", data=body, timeout=60)
            elapsed = time.perf_counter() - began
            if response.status_code != 200 or len(response.json()["predictions"]) != expect_rows:
                failed += 1
            mine.append(elapsed)
        with lock:
            latencies.extend(mine)
            errors += failed

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up time per run")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs per server")
    parser.add_argument("--batch", type=int, action="append", help="rows per request (1, 100)")
    parser.add_argument("--json", action="store_true", help="also print raw results as JSON")
    args = parser.parse_args()
    batches = args.batch or [1, 100]

    work = Path(tempfile.mkdtemp(prefix="flops-bench-inference-"))
    (work / "tmp").mkdir()
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "TMPDIR": str(work / "tmp"), "MLFLOW_ENV_ROOT": str(work / "envs"),
           "MLFLOW_TRACKING_URI": tracking_uri,
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           # mlflow models serve execs `uvicorn` from PATH
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    os.environ.update({k: env[k] for k in ("TMPDIR", "MLFLOW_ENV_ROOT")})
    processes: list[subprocess.Popen[bytes]] = []
    try:
        print(f"registering the model in {tracking_uri} ...", flush=True)
        model_uri, x = register_model(tracking_uri)
        ours_port, mlflow_port = free_port(), free_port()
        servers = {
            "FLOps inference_server": (
                [sys.executable, "-m", "inference_server"],
                {**env, "FLOPS_MODEL_URI": model_uri, "FLOPS_TRACKING_URI": tracking_uri,
                 "FLOPS_LISTEN_ADDRESS": f"127.0.0.1:{ours_port}"},
                f"http://127.0.0.1:{ours_port}",
            ),
            "mlflow models serve": (
                [shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow",
                 "models", "serve", "-m", model_uri, "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(mlflow_port)],
                env,
                f"http://127.0.0.1:{mlflow_port}",
            ),
        }
        urls = {}
        for name, (command, server_env, url) in servers.items():
            log = work / f"{name.split()[0].lower()}.log"
            process = start(command, server_env, log)
            processes.append(process)
            wait_ready(url, process, log, timeout=300)
            urls[name] = url
            print(f"{name} ready at {url}", flush=True)

        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        rng = np.random.default_rng(0)
        for batch in batches:
            rows = x[rng.choice(len(x), batch, replace=False)]
            body = json.dumps({"dataframe_split": {"columns": COLUMNS,
                                                   "data": rows.tolist()}}).encode()
            for _ in range(args.repeat):
                for name, url in urls.items():
                    load(url, body, threads=args.threads, seconds=args.warmup, expect_rows=batch)
                    run = load(url, body, threads=args.threads, seconds=args.seconds,
                               expect_rows=batch)
                    results.setdefault((name, batch), []).append(run)
                    print(f"  {name:24} batch {batch:>3}: {run['rps']:8.1f} req/s  "
                          f"p50 {run['p50_ms']:6.1f} ms  p99 {run['p99_ms']:6.1f} ms  "
                          f"errors {run['errors']:.0f}", flush=True)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{dt.date.today().isoformat()}, {os.cpu_count()} cores, {args.threads} client threads, "
          f"{args.seconds:g} s per run after {args.warmup:g} s warm-up, median of {args.repeat}")
    print()
    print("| server | rows/request | requests/s | rows/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|---|---|")
    for (name, batch), runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        print(f"| {name} | {batch} | {rps:.0f} | {rps * batch:.0f} | {p50:.1f} ms | "
              f"{p99:.1f} ms | {errors:.0f} |")
    if args.json:
        print(json.dumps({f"{k[0]}|{k[1]}": v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
