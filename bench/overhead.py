"""Per-round overhead of ``flops train-local`` against a bare Flower script, side by side.

Both train the same tiny model (bench/tiny_repo) with the same learners. Each system runs with a
small and a large number of rounds, alternating, ``--repeat`` times; the marginal cost of a round
is (T_large - T_small) / (R_large - R_small) from the medians. The fixed cost (start-up and
finish: process start, MLflow store and run, model logging and registration) is reported too.

Usage: python bench/overhead.py [--learners 3] [--small 5] [--large 305] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def run_flops(rounds: int, learners: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return timed([sys.executable, "-m", "flops_manager.cli.main", "train-local",
                      str(HERE / "tiny_repo"), "--learners", str(learners), "--rounds",
                      str(rounds), "--workdir", tmp, "--json"])


def run_bare(rounds: int, learners: int) -> float:
    return timed([sys.executable, str(HERE / "bare_flower.py"), "--rounds", str(rounds),
                  "--learners", str(learners)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--small", type=int, default=5)
    parser.add_argument("--large", type=int, default=305)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeat):
        for rounds in (args.small, args.large):
            for name, runner in (("bare_flower", run_bare), ("flops", run_flops)):
                times.setdefault((name, rounds), []).append(runner(rounds, args.learners))
    med = {key: statistics.median(values) for key, values in times.items()}
    span = args.large - args.small
    result: dict[str, object] = {"learners": args.learners, "rounds": [args.small, args.large],
                                 "repeat": args.repeat,
                                 "median_wall_s": {f"{k[0]}@{k[1]}": round(v, 3)
                                                   for k, v in med.items()}}
    per_round = {}
    for name in ("bare_flower", "flops"):
        per_round[name] = (med[(name, args.large)] - med[(name, args.small)]) / span
        fixed = med[(name, args.small)] - per_round[name] * args.small
        result[f"{name}_per_round_s"] = round(per_round[name], 4)
        result[f"{name}_fixed_s"] = round(fixed, 3)
    result["per_round_ratio"] = round(per_round["flops"] / per_round["bare_flower"], 3)
    result["orchestration_per_round_s"] = round(per_round["flops"] - per_round["bare_flower"], 4)
    result["wall_ratio_large"] = round(med[("flops", args.large)]
                                       / med[("bare_flower", args.large)], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
