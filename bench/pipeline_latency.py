"""Time from POST to registered model through the manager (local backend, warm environment
cache), split by phase, against the same training run with ``flops train-local``.

Both runs: digits_sklearn, 3 learners, 3 rounds, Dirichlet(0.5) mock data on a data plane, the
same MLflow server. Runs alternate (pipeline, train-local, pipeline, ...) so machine noise hits
both alike; medians are reported.

    python bench/pipeline_latency.py [--repeats 3] [--interval-only] [--cold-start]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from flops_manager.cli import stack

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits_sklearn"
GIT = ["git", "-c", "user.name=b", "-c", "user.email=b@b.invalid"]
SPEC = {"name": "bench", "training": {"rounds": 3, "learners": 3},
        "mock_data": {"partitioner": "dirichlet", "alpha": 0.5}}


def _ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pipeline_run(api: str, headers: dict[str, str], repo: str) -> dict[str, float]:
    """Submit one project; return seconds per phase and POST-to-completed."""
    started = time.time()
    body = {"repository": {"url": repo}, "spec": SPEC}
    pid = requests.post(f"{api}/projects", json=body, headers=headers, timeout=30).json()["id"]
    deadline = time.monotonic() + 900
    while True:
        project = requests.get(f"{api}/projects/{pid}", headers=headers, timeout=30).json()
        if project["phase"] in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"project {pid} still {project['phase']} after 900 s")
        time.sleep(0.2)
    if project["phase"] != "completed":
        raise SystemExit(f"project {pid} {project['phase']}: {project['last_error']}")
    events = requests.get(f"{api}/projects/{pid}/events", params={"limit": 1000},
                          headers=headers, timeout=30).json()["items"]
    changes = [(e["event"]["data"]["to"], _ts(e["event"]["timestamp"]))
               for e in events if e["event"]["event"] == "phase_changed"]
    out: dict[str, float] = {}
    previous_name, previous_at = "submitted", started
    for name, at in changes:
        out[previous_name] = at - previous_at
        previous_name, previous_at = name, at
    out["total"] = changes[-1][1] - started
    print(json.dumps({"deploying_timeline": deploying_timeline(events)}), flush=True)
    return out


QUIET = frozenset({"progress", "online", "log"})
"""Events left out of the timeline (per-round learner progress, connections, log lines)."""


def deploying_timeline(events: list[dict[str, Any]]) -> list[str]:
    """Each component event from deploying on, as seconds since deploying began (where it goes).

    Phase changes are listed too; the timeline ends with the project's last phase change.
    """
    timeline: list[str] = []
    began: float | None = None
    for item in events:
        event = item["event"]
        at = _ts(event["timestamp"])
        if event["event"] == "phase_changed":
            if event["data"].get("to") == "deploying":
                began = at
            elif began is not None:
                timeline.append(f"{at - began:5.1f} s phase -> {event['data'].get('to')}")
        elif began is not None and event["event"] not in QUIET:
            timeline.append(f"{at - began:5.1f} s {event['component']}/{event['instance']} "
                            f"{event['event']}")
    return timeline


def train_local_run(mlflow_url: str, workdir: Path) -> float:
    """Run the same training with ``flops train-local``; return wall seconds."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "flops_manager.cli.main", "train-local", str(DIGITS),
         "--learners", "3", "--rounds", "3", "--data", "dirichlet", "--alpha", "0.5",
         "--mlflow-uri", mlflow_url, "--workdir", str(workdir), "--json"],
        check=True, capture_output=True, text=True, timeout=900,
    )
    return time.monotonic() - started


def main() -> None:
    """Run the comparison and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--interval-only", action="store_true",
                        help="baseline: the reconciler runs every interval, not on events")
    parser.add_argument("--cold-start", action="store_true",
                        help="baseline: every component imports its modules itself (no warm "
                        "interpreter forking them)")
    args = parser.parse_args()
    if args.interval_only:
        os.environ["FLOPS_RECONCILE_ON_EVENTS"] = "false"  # inherited by the stack's manager
    if args.cold_start:
        os.environ["FLOPS_LOCAL_WARM_START"] = "false"
    scratch = Path(tempfile.mkdtemp(prefix="flops-bench-"))
    directory = scratch / "stack"
    repo = scratch / "digits"
    shutil.copytree(DIGITS, repo, ignore=shutil.ignore_patterns("__pycache__"))
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run([*GIT, *argv], cwd=repo, check=True)
    record = stack.start_stack(directory)
    try:
        api = record["api_url"] + "/api/v1"
        headers = {"Authorization": f"Bearer {stack.api_token(directory)}"}
        pipeline_run(api, headers, repo.as_uri())  # warm the environment cache
        pipelines: list[dict[str, float]] = []
        locals_: list[float] = []
        for index in range(args.repeats):
            pipelines.append(pipeline_run(api, headers, repo.as_uri()))
            locals_.append(train_local_run(record["mlflow_url"], scratch / f"local-{index}"))
            print(json.dumps({"pipeline": pipelines[-1], "train_local": locals_[-1]}),
                  flush=True)
    finally:
        stack.stop_stack(directory)
        shutil.rmtree(scratch, ignore_errors=True)
    phases = sorted({k for p in pipelines for k in p} - {"total"},
                    key=["submitted", "building", "deploying", "training"].index)
    print("\n| measure | median s |\n|---|---|")
    for name in phases:
        print(f"| pipeline: {name} | {statistics.median(p[name] for p in pipelines):.1f} |")
    total = statistics.median(p["total"] for p in pipelines)
    local = statistics.median(locals_)
    print(f"| pipeline: POST -> registered model | {total:.1f} |")
    print(f"| flops train-local, same training | {local:.1f} |")
    print(f"| ratio pipeline / train-local | {total / local:.2f} |")


if __name__ == "__main__":
    main()
