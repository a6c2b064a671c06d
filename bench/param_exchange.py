"""Parameter exchange throughput: one round with 10 MB and 100 MB of parameters, 2 learners.

Runs ``flops train-local`` on bench/tiny_repo with ``BENCH_PARAM_MB`` set and reads the round's
``bytes_exchanged`` (parameters sent to and received from learners in fit, plus parameters sent
for evaluation) and ``duration_s`` from the aggregator's ``round_completed`` event.

``--baseline-root DIR`` also times ``train-local`` from another checkout of FLOps (before/after).

Usage: python bench/param_exchange.py [--sizes 10 100] [--learners 2] [--repeat 3]
       [--baseline-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def flops_round(megabytes: float, learners: int, root: Path) -> tuple[int, float]:
    """Bytes moved and seconds of one ``train-local`` round run from the checkout ``root``."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_PARAM_MB": str(megabytes)}
        result = subprocess.run(
            [sys.executable, "-m", "flops_manager.cli.main", "train-local", str(HERE / "tiny_repo"),
             "--learners", str(learners), "--rounds", "1", "--workdir", tmp, "--json"],
            capture_output=True, text=True, env=env, check=False, cwd=root)
        if result.returncode != 0:
            raise SystemExit(result.stdout + result.stderr)
        events = [json.loads(line) for line in Path(tmp, "events.jsonl").read_text().splitlines()]
    done = next(e for e in events if e["event"] == "round_completed")
    return done["data"]["bytes_exchanged"], done["data"]["duration_s"]


def bare_round(megabytes: float, learners: int) -> float:
    """Seconds of one bare Flower round with the same parameters."""
    env = {**os.environ, "BENCH_PARAM_MB": str(megabytes)}
    bare = subprocess.run(
        [sys.executable, str(HERE / "bare_flower.py"), "--rounds", "1", "--learners",
         str(learners)], capture_output=True, text=True, env=env, check=True)
    seconds: float = json.loads(bare.stdout.strip().splitlines()[-1])["round_seconds"][0]
    return seconds


def measure(megabytes: float, learners: int, baseline: Path | None,
            repeat: int) -> dict[str, object]:
    """Median round seconds and MB/s of each system over ``repeat`` alternating runs."""
    rounds: dict[str, list[float]] = {}
    moved = 0
    for _ in range(repeat):
        moved, seconds = flops_round(megabytes, learners, HERE.parent)
        rounds.setdefault("flops", []).append(seconds)
        rounds.setdefault("bare_flower", []).append(bare_round(megabytes, learners))
        if baseline is not None:
            rounds.setdefault("baseline", []).append(
                flops_round(megabytes, learners, baseline)[1])
    out: dict[str, object] = {"param_mb": megabytes, "learners": learners, "repeat": repeat,
                             "mb_moved": round(moved / 1e6, 1)}
    for name, values in rounds.items():
        median = statistics.median(values)
        out[f"{name}_round_s"] = round(median, 3)
        out[f"{name}_mb_per_s"] = round(moved / 1e6 / median, 1)
        out[f"{name}_rounds_s"] = [round(v, 3) for v in values]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 100])
    parser.add_argument("--learners", type=int, default=2)
    parser.add_argument("--baseline-root", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for size in args.sizes:
        print(json.dumps(measure(size, args.learners, args.baseline_root, args.repeat)),
              flush=True)


if __name__ == "__main__":
    main()
