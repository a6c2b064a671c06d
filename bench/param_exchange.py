"""Parameter exchange throughput: one round with 10 MB and 100 MB of parameters, 2 learners.

Runs ``flops train-local`` on bench/tiny_repo with ``BENCH_PARAM_MB`` set and reads the round's
``bytes_exchanged`` (parameters sent to and received from learners in fit, plus parameters sent
for evaluation) and ``duration_s`` from the aggregator's ``round_completed`` event.

``--baseline-root DIR`` also times ``train-local`` from another checkout of FLOps (before/after).

``--round N`` runs N rounds in both systems and times round N (default 1). Round 1 overlaps the
aggregator's MLflow start (its run is created while training begins); a later round is the
steady state of a longer training.

``--codec`` instead times, in this process, the per-round work on the parameters that FLOps
changed: serializing and deserializing one array of each size with Flower's functions
(``np.save`` / ``np.load`` on a BytesIO) and with FLOps' one-copy codec, and the learners'
NaN/inf check before (``np.isfinite(a).all()``) and now (``all_finite``), alternating, medians.

Usage: python bench/param_exchange.py [--sizes 10 100] [--learners 2] [--repeat 3]
       [--round N] [--baseline-root DIR] [--codec]
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


def flops_round(megabytes: float, learners: int, root: Path,
                round_: int = 1) -> tuple[int, float]:
    """Bytes moved and seconds of round ``round_`` of ``train-local`` run from ``root``."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_PARAM_MB": str(megabytes)}
        result = subprocess.run(
            [sys.executable, "-m", "flops_manager.cli.main", "train-local", str(HERE / "tiny_repo"),
             "--learners", str(learners), "--rounds", str(round_), "--workdir", tmp, "--json"],
            capture_output=True, text=True, env=env, check=False, cwd=root)
        if result.returncode != 0:
            raise SystemExit(result.stdout + result.stderr)
        events = [json.loads(line) for line in Path(tmp, "events.jsonl").read_text().splitlines()]
    done = next(e for e in events
                if e["event"] == "round_completed" and e["data"]["round"] == round_)
    return done["data"]["bytes_exchanged"], done["data"]["duration_s"]


def bare_round(megabytes: float, learners: int, round_: int = 1) -> float:
    """Seconds of round ``round_`` of bare Flower with the same parameters."""
    env = {**os.environ, "BENCH_PARAM_MB": str(megabytes)}
    bare = subprocess.run(
        [sys.executable, str(HERE / "bare_flower.py"), "--rounds", str(round_), "--learners",
         str(learners)], capture_output=True, text=True, env=env, check=True)
    seconds: float = json.loads(bare.stdout.strip().splitlines()[-1])["round_seconds"][round_ - 1]
    return seconds


def measure(megabytes: float, learners: int, baseline: Path | None,
            repeat: int, round_: int = 1) -> dict[str, object]:
    """Median seconds and MB/s of round ``round_`` of each system over ``repeat`` alternating
    runs."""
    rounds: dict[str, list[float]] = {}
    moved = 0
    for _ in range(repeat):
        moved, seconds = flops_round(megabytes, learners, HERE.parent, round_)
        rounds.setdefault("flops", []).append(seconds)
        rounds.setdefault("bare_flower", []).append(bare_round(megabytes, learners, round_))
        if baseline is not None:
            rounds.setdefault("baseline", []).append(
                flops_round(megabytes, learners, baseline, round_)[1])
    out: dict[str, object] = {"param_mb": megabytes, "learners": learners, "repeat": repeat,
                             "round": round_, "mb_moved": round(moved / 1e6, 1)}
    for name, values in rounds.items():
        median = statistics.median(values)
        out[f"{name}_round_s"] = round(median, 3)
        out[f"{name}_mb_per_s"] = round(moved / 1e6 / median, 1)
        out[f"{name}_rounds_s"] = [round(v, 3) for v in values]
    return out


def codec(megabytes: float, repeat: int) -> dict[str, object]:
    """Median milliseconds of each (de)serialization and finiteness check of one array."""
    import time

    import numpy as np
    from flwr.common import bytes_to_ndarray, ndarray_to_bytes

    from flops_contracts.ndarray_codec import ndarray_to_tensor, tensor_to_ndarray
    from learner_base.contract_checks import all_finite

    array = np.random.default_rng(0).random(int(megabytes * 2**20 / 4), dtype=np.float32)
    tensor = ndarray_to_bytes(array)
    cases = {
        "flower_serialize": lambda: ndarray_to_bytes(array),
        "flops_serialize": lambda: ndarray_to_tensor(array),
        "flower_deserialize": lambda: bytes_to_ndarray(tensor),
        "flops_deserialize": lambda: tensor_to_ndarray(tensor),
        "isfinite_all": lambda: bool(np.isfinite(array).all()),
        "all_finite": lambda: all_finite(array),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, call in cases.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return {"param_mb": megabytes, "repeat": repeat,
            **{f"{name}_ms": round(statistics.median(v) * 1000, 1) for name, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 100])
    parser.add_argument("--learners", type=int, default=2)
    parser.add_argument("--baseline-root", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--round", type=int, default=1, dest="round_",
                        help="run this many rounds and time the last one")
    parser.add_argument("--codec", action="store_true",
                        help="time the (de)serialization and the finiteness check in-process")
    args = parser.parse_args()
    for size in args.sizes:
        if args.codec:
            print(json.dumps(codec(size, max(args.repeat, 5))), flush=True)
            continue
        print(json.dumps(measure(size, args.learners, args.baseline_root, args.repeat,
                                 args.round_)), flush=True)


if __name__ == "__main__":
    main()
