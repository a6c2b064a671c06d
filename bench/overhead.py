"""Per-round overhead of ``flops train-local`` against a bare Flower script, side by side.

Both train the same model (bench/tiny_repo by default) with the same learners. Each system runs
with a small and a large number of rounds, alternating, ``--repeat`` times. Two measures of a
round's cost are reported from the medians:

- marginal: (T_large - T_small) / (R_large - R_small) of the process wall times (start-up noise
  on a loaded machine can swamp it);
- period: the median time between the ends of consecutive rounds inside the large runs (bare
  Flower: ``aggregate_evaluate`` returning; FLOps: the aggregator's ``round_completed`` events),
  which start-up does not disturb.

The fixed cost (start-up and finish: process start, MLflow store and run, model logging and
registration) is T_large - R_large x period.

``--baseline-root DIR`` adds a third system: ``train-local`` run from another checkout of FLOps
(e.g. ``git archive main | tar -x -C DIR``), for a before/after comparison in the same run.

Usage: python bench/overhead.py [--learners 3] [--small 5] [--large 105] [--repeat 2]
       [--repo bench/tiny_repo] [--baseline-root DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
Run = tuple[float, float | None]
"""Wall seconds of the process, median seconds between round ends (None: too few rounds)."""


def timed(argv: list[str], *, cwd: Path | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def median_gap(ends: list[float]) -> float | None:
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    return statistics.median(gaps) if gaps else None


def flops_runner(root: Path, repo: Path) -> Callable[[int, int], Run]:
    """``train-local`` from the checkout at ``root`` (its modules come first on sys.path)."""
    def run(rounds: int, learners: int) -> Run:
        with tempfile.TemporaryDirectory() as tmp:
            wall, _ = timed([sys.executable, "-m", "flops_manager.cli.main", "train-local",
                             str(repo), "--learners", str(learners), "--rounds", str(rounds),
                             "--workdir", tmp, "--json"], cwd=root)
            ends = round_ends(Path(tmp, "events.jsonl"))
        return wall, median_gap(ends)
    return run


def round_ends(events: Path) -> list[float]:
    """Epoch seconds of the classic aggregator's ``round_completed`` events, in order."""
    ends = []
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "round_completed" and event["component"] == "aggregator":
            stamp = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
            ends.append(stamp.timestamp())
    return sorted(ends)


def bare_runner(repo: Path) -> Callable[[int, int], Run]:
    def run(rounds: int, learners: int) -> Run:
        wall, out = timed([sys.executable, str(HERE / "bare_flower.py"), "--rounds", str(rounds),
                           "--learners", str(learners), "--repo", str(repo)])
        periods = json.loads(out.strip().splitlines()[-1]).get("round_periods") or []
        return wall, statistics.median(periods) if periods else None
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--small", type=int, default=5)
    parser.add_argument("--large", type=int, default=105)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--repo", type=Path, default=HERE / "tiny_repo")
    parser.add_argument("--baseline-root", type=Path,
                        help="another FLOps checkout to time as 'flops_baseline'")
    args = parser.parse_args()
    repo = args.repo.resolve()
    systems: dict[str, Callable[[int, int], Run]] = {
        "bare_flower": bare_runner(repo), "flops": flops_runner(HERE.parent, repo)}
    if args.baseline_root:
        systems["flops_baseline"] = flops_runner(args.baseline_root.resolve(), repo)
    walls: dict[tuple[str, int], list[float]] = {}
    periods: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for rounds in (args.small, args.large):
            for name, runner in systems.items():
                wall, period = runner(rounds, args.learners)
                walls.setdefault((name, rounds), []).append(wall)
                if rounds == args.large and period is not None:
                    periods.setdefault(name, []).append(period)
    med = {key: statistics.median(values) for key, values in walls.items()}
    span = args.large - args.small
    result: dict[str, object] = {
        "learners": args.learners, "rounds": [args.small, args.large], "repeat": args.repeat,
        "repo": repo.name, "median_wall_s": {f"{k[0]}@{k[1]}": round(v, 3)
                                             for k, v in med.items()}}
    for name in systems:
        marginal = (med[(name, args.large)] - med[(name, args.small)]) / span
        period = statistics.median(periods[name]) if name in periods else marginal
        result[name] = {
            "marginal_per_round_s": round(marginal, 4),
            "period_per_round_s": round(period, 4),
            "fixed_s": round(med[(name, args.large)] - period * args.large, 3),
        }
    bare = result["bare_flower"]
    assert isinstance(bare, dict)
    for name in systems:
        if name == "bare_flower":
            continue
        mine = result[name]
        assert isinstance(mine, dict)
        mine["orchestration_per_round_s"] = round(
            mine["period_per_round_s"] - bare["period_per_round_s"], 4)
        mine["fixed_minus_bare_s"] = round(mine["fixed_s"] - bare["fixed_s"], 3)
        mine["wall_ratio_large"] = round(med[(name, args.large)]
                                         / med[("bare_flower", args.large)], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
