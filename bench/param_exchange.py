"""Parameter exchange throughput: one round with 10 MB and 100 MB of parameters, 2 learners.

Runs ``flops train-local`` on bench/tiny_repo with ``BENCH_PARAM_MB`` set and reads the round's
``bytes_exchanged`` (parameters sent to and received from learners in fit, plus parameters sent
for evaluation) and ``duration_s`` from the aggregator's ``round_completed`` event.

``--baseline-root DIR`` also times ``train-local`` from another checkout of FLOps (before/after).

Usage: python bench/param_exchange.py [--sizes 10 100] [--learners 2] [--baseline-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
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


def measure(megabytes: float, learners: int, baseline: Path | None) -> dict[str, float]:
    env = {**os.environ, "BENCH_PARAM_MB": str(megabytes)}
    moved, seconds = flops_round(megabytes, learners, HERE.parent)
    bare = subprocess.run(
        [sys.executable, str(HERE / "bare_flower.py"), "--rounds", "1", "--learners",
         str(learners)], capture_output=True, text=True, env=env, check=True)
    bare_round = json.loads(bare.stdout.strip().splitlines()[-1])["round_seconds"][0]
    out = {"param_mb": megabytes, "learners": learners, "flops_round_s": seconds,
           "bare_flower_round_s": bare_round, "mb_moved": round(moved / 1e6, 1),
           "flops_mb_per_s": round(moved / 1e6 / seconds, 1),
           "bare_flower_mb_per_s": round(moved / 1e6 / bare_round, 1)}
    if baseline is not None:
        moved, seconds = flops_round(megabytes, learners, baseline)
        out["baseline_round_s"] = seconds
        out["baseline_mb_per_s"] = round(moved / 1e6 / seconds, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 100])
    parser.add_argument("--learners", type=int, default=2)
    parser.add_argument("--baseline-root", type=Path)
    args = parser.parse_args()
    for size in args.sizes:
        print(json.dumps(measure(size, args.learners, args.baseline_root)), flush=True)


if __name__ == "__main__":
    main()
