"""Scaling with learners: ``flops train-local`` vs bare Flower at 3, 10, 25 and 50 learners.

For each learner count, runs ``train-local`` (tiny model, ``--rounds`` rounds) and then
``bare_flower.py`` with the same learners, and records:

- wall time of the whole process;
- time per round: the median gap between consecutive round ends (see ``overhead.py``);
- peak RSS of each learner process (median over the learners) and of the server process,
  sampled from ``/proc`` every ``--sample-s`` seconds over the process tree.

Usage: python bench/scaling.py [--learners 3 10 25 50] [--rounds 6]
Prints one JSON line per run, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.overhead import HERE, median_gap, round_ends


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out += [int(c) for c in text.split()]
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    pending, seen = [pid], []
    while pending:
        current = pending.pop()
        seen.append(current)
        pending += _children(current)
    return seen


def _rss_and_cmdline(pid: int) -> tuple[int, str] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024, cmdline
    return None


class RssSampler:
    """Peak RSS (MB) per process of a process tree, sampled until stopped."""

    def __init__(self, root: int, every_s: float) -> None:
        self.root, self.every_s = root, every_s
        self.peak: dict[int, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in _tree(self.root):
                sample = _rss_and_cmdline(pid)
                if sample and sample[0] >= self.peak.get(pid, (0, ""))[0]:
                    self.peak[pid] = sample
            self._stop.wait(self.every_s)

    def stop(self) -> dict[int, tuple[int, str]]:
        self._stop.set()
        self._thread.join()
        return self.peak


def measure(argv: list[str], *, learner_mark: str, server_mark: str,
            every_s: float) -> tuple[float, str, list[int], int]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(proc.pid, every_s)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    peak = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{out[-2000:]}\n{err[-2000:]}")
    learners = [rss for rss, cmd in peak.values() if learner_mark in cmd]
    server = max((rss for rss, cmd in peak.values() if server_mark in cmd), default=0)
    return wall, out, learners, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, nargs="+", default=[3, 10, 25, 50])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sample-s", type=float, default=0.5)
    args = parser.parse_args()
    repo = HERE / "tiny_repo"
    rows = []
    for n in args.learners:
        with tempfile.TemporaryDirectory() as tmp:
            wall, _, learners, server = measure(
                [sys.executable, "-m", "flops_manager.cli.main", "train-local", str(repo),
                 "--learners", str(n), "--rounds", str(args.rounds), "--workdir", tmp,
                 "--timeout", "900", "--json"],
                learner_mark="-m learner_base", server_mark="-m aggregator",
                every_s=args.sample_s)
            period = median_gap(round_ends(Path(tmp, "events.jsonl")))
        rows.append({"system": "flops", "learners": n, "wall_s": round(wall, 2),
                     "round_s": period and round(period, 4), "learner_processes": len(learners),
                     "learner_rss_mb": statistics.median(learners) if learners else None,
                     "server_rss_mb": server})
        print(json.dumps(rows[-1]), flush=True)
        wall, out, learners, server = measure(
            [sys.executable, str(HERE / "bare_flower.py"), "--rounds", str(args.rounds),
             "--learners", str(n)],
            learner_mark="spawn_main", server_mark="bare_flower.py", every_s=args.sample_s)
        periods = json.loads(out.strip().splitlines()[-1])["round_periods"]
        rows.append({"system": "bare_flower", "learners": n, "wall_s": round(wall, 2),
                     "round_s": round(statistics.median(periods), 4) if periods else None,
                     "learner_processes": len(learners),
                     "learner_rss_mb": statistics.median(learners) if learners else None,
                     "server_rss_mb": server})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| learners | bare wall | FLOps wall | bare s/round | FLOps s/round | "
          "bare MB/learner | FLOps MB/learner | bare server MB | FLOps aggregator MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.learners:
        f = next(r for r in rows if r["system"] == "flops" and r["learners"] == n)
        b = next(r for r in rows if r["system"] == "bare_flower" and r["learners"] == n)
        print(f"| {n} | {b['wall_s']} s | {f['wall_s']} s | {b['round_s']} | {f['round_s']} | "
              f"{b['learner_rss_mb']} | {f['learner_rss_mb']} | {b['server_rss_mb']} | "
              f"{f['server_rss_mb']} |")


if __name__ == "__main__":
    main()
