"""Time from POST to "all learners placed" on 3 and 20 simulated FLOps nodes (issue 16).

For each node count N the embedded stack starts with N nodes (``flops up --nodes N``), the
digits are split Dirichlet(0.5) into N partitions and partition i is pushed to node i (as
``flops demo`` does). Then projects are submitted, alternating:

- **nodes**: ``data_tags`` and no ``mock_data``; the manager places one learner on each node
  at submission, each learner reads only its node's data server;
- **mock on nodes**: the same learner count with ``mock_data``; placed on the nodes the same
  way, then one mock data provider per node writes that node's partition before the learners
  start.

(Until 2026-12-07 a second stack without nodes ran a third kind, mock data in a data server of
the project's own; that path is gone: mock data always goes to the nodes.)

Measured per project, from the POST: its answer (placement is decided inside it), every
learner's ``started`` event (the learner runs, pinned to its node, and has its data address),
and the phase ``training``. One round; each project is waited for to the end before the next.

    python bench/placement.py [--nodes 3 20] [--repeats 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository, so that bench.* imports as a script too

from flops_manager.cli import stack  # noqa: E402
from flops_manager.cli.client import ApiClient  # noqa: E402
from flops_manager.cli.demo import DATA_TAG, place_demo_data  # noqa: E402

DIGITS = ROOT / "examples" / "digits_sklearn"
GIT = ["git", "-c", "user.name=b", "-c", "user.email=b@b.invalid"]
TIMEOUT_S = 900.0


def _ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


KINDS = ("nodes", "mock on nodes")
"""The kinds of project measured (see the module docstring), in table order."""


def project_spec(learners: int, *, mock: bool) -> dict[str, Any]:
    """One round of digits on ``learners`` learners, by data tag or with mock data."""
    spec: dict[str, Any] = {"name": "placement-bench",
                            "training": {"rounds": 1, "learners": learners,
                                         "min_available_learners": learners}}
    if mock:
        spec["mock_data"] = {"partitioner": "dirichlet", "alpha": 0.5}
    else:
        spec["data_tags"] = [DATA_TAG]
    return spec


def milestones(events: list[dict[str, Any]], posted: float, learners: int) -> dict[str, float]:
    """Seconds from the POST to every learner ``started`` and to the phase ``training``."""
    starts = [_ts(e["timestamp"]) for e in events
              if e["component"] == "learner" and e["event"] == "started"]
    training = [_ts(e["timestamp"]) for e in events
                if e["event"] == "phase_changed" and e["data"].get("to") == "training"]
    if len(starts) < learners or not training:
        raise SystemExit(f"{len(starts)} of {learners} learners started; training: {training}")
    return {"all_learners_started": sorted(starts)[learners - 1] - posted,
            "training": training[0] - posted}


def run_project(client: ApiClient, repo: str, learners: int, *, kind: str) -> dict[str, float]:
    """Submit one project of ``kind``, wait for its end; return its milestones."""
    posted = time.time()
    project = client.request("POST", "projects",
                             json={"repository": {"url": repo}, "spec": project_spec(
                                 learners, mock=kind != "nodes")})
    answered = time.time() - posted
    pid = project["id"]
    placed = len(project.get("placement") or [])
    if placed != learners:
        raise SystemExit(f"{kind}: {placed} learners placed on nodes")
    deadline = time.monotonic() + TIMEOUT_S
    while project["phase"] not in ("completed", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise SystemExit(f"project {pid} still {project['phase']} after {TIMEOUT_S:.0f} s")
        time.sleep(0.5)
        project = client.request("GET", f"projects/{pid}")
    if project["phase"] != "completed":
        raise SystemExit(f"project {pid} {project['phase']}: {project['last_error']}")
    events = [item["event"] for item in client.request(
        "GET", f"projects/{pid}/events", params={"limit": 1000})["items"]]
    return {"post_answer": answered, **milestones(events, posted, learners)}


def bench_nodes(count: int, repeats: int, scratch: Path, repo: str) -> dict[str, list[float]]:
    """Alternate the kinds on a stack with ``count`` nodes."""
    results: dict[str, list[float]] = {}
    directory = scratch / f"stack-{count}"
    started = time.monotonic()
    record = stack.start_stack(directory, nodes=count)
    print(f"{count} nodes: stack up in {time.monotonic() - started:.1f} s", flush=True)
    try:
        client = ApiClient(record["api_url"], stack.api_token(directory), timeout_s=120)
        place_demo_data(client, list(record["nodes"]), count, directory, report_timeout_s=120.0)
        run_project(client, repo, count, kind=KINDS[0])  # warm-up: the imports
        for _ in range(repeats):
            for kind in KINDS:
                measured = run_project(client, repo, count, kind=kind)
                print(json.dumps({"nodes": count, "kind": kind, **measured}), flush=True)
                for key, value in measured.items():
                    results.setdefault(f"{kind}:{key}", []).append(value)
    finally:
        stack.stop_stack(directory)
    return results


def main() -> None:
    """Run the benchmark and print a Markdown table of medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 20])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="flops-placement-"))
    repo = scratch / "digits"
    shutil.copytree(DIGITS, repo, ignore=shutil.ignore_patterns("__pycache__"))
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run([*GIT, *argv], cwd=repo, check=True)
    rows = []
    try:
        for count in args.nodes:
            results = bench_nodes(count, args.repeats, scratch, str(repo))
            for key in ("post_answer", "all_learners_started", "training"):
                medians = [f"{statistics.median(results[f'{kind}:{key}']):.2f}"
                           for kind in KINDS]
                rows.append(f"| {count} | {key} | {' | '.join(medians)} |")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n| nodes | seconds from POST to | {' | '.join(KINDS)} |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
