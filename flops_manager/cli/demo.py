"""``flops demo``: the whole pipeline on this machine with the digits example, in one command.

Starts the embedded stack if needed (with at least one simulated FLOps node per learner),
splits the digits data set Dirichlet(0.5)-wise, keeps a held-out set no learner sees, and
pushes partition i to node i (``flops data push``: the path real data takes). It then submits
``examples/digits_sklearn`` (a snapshot in a local Git repository,
:mod:`flops_manager.cli.local_repo`) with the data's tag, so each learner trains on its own
node's data; it shows which learner trained on which node, each round's accuracy, then the
MLflow UI and runs view, the registered model, the inference endpoint, and the served model's
predictions for the held-out digits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import requests

from flops_contracts.errors import FlopsError
from flops_manager.cli import data, stack
from flops_manager.cli.client import ApiClient, connect
from flops_manager.cli.local_repo import SNAPSHOT_DIR, snapshot
from flops_manager.cli.watch import follow, progress_lines

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_sklearn"
HOLDOUT_FRACTION = 0.2
SEED = 0
DATA_TAG = "digits-demo"
LABEL = "label"
DATA_DIR = "demo-data"


def demo_request(repo_url: str, commit: str, *, rounds: int,
                 learners: int) -> dict[str, Any]:
    """The project the demo submits: trained where the nodes hold ``DATA_TAG``."""
    return {
        "repository": {"url": repo_url, "ref": commit},
        "spec": {
            "name": "digits-demo",
            "data_tags": [DATA_TAG],
            "training": {"rounds": rounds, "learners": learners,
                         "min_available_learners": learners},
            "post_training_steps": ["build_image_for_trained_model",
                                    "deploy_trained_model_image"],
        },
    }


def demo_partitions(learners: int) -> list[Any]:
    """The digits in ``learners`` Dirichlet(0.5) partitions with a ``split`` column.

    The rows of :func:`holdout_digits` are in none of them (the mock data provider's split).
    """
    from flops_dataplane.mock_provider import PartitionOptions, partition_tables
    from flops_dataplane.sources import sklearn_table

    options = PartitionOptions(dataset="sklearn:digits", label_column=LABEL,
                               partitions=learners, partitioner="dirichlet", alpha=0.5,
                               seed=SEED, holdout_fraction=HOLDOUT_FRACTION)
    return partition_tables(options, sklearn_table("digits"))


def node_summary(node: str, manifest: dict[str, Any]) -> str:
    """One line saying what ``node`` holds: rows and its most frequent digits."""
    histogram = manifest.get("label_histogram") or {}
    top = sorted(histogram.items(), key=lambda item: (-item[1], item[0]))[:3]
    share = ", ".join(f"{label} ({count})" for label, count in top)
    return f"{node}: {manifest['rows']} digits, mostly {share}" if share else \
        f"{node}: {manifest['rows']} rows"


def _reported(client: ApiClient, pushed: dict[str, int], *,
              timeout_s: float) -> dict[str, dict[str, Any]]:
    """Wait until the manager's inventory shows each pushed partition; return them by node.

    Raises
    ------
    FlopsError
        If a node's report does not arrive within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        seen = {entry["node"]: entry for entry in data.listing(client, None)
                if entry["tag"] == DATA_TAG and entry["node"] in pushed
                and entry["rows"] == pushed[entry["node"]]}
        if len(seen) == len(pushed):
            return seen
        if time.monotonic() > deadline:
            missing = sorted(set(pushed) - set(seen))
            raise FlopsError(f"nodes {', '.join(missing)} did not report their data within "
                             f"{timeout_s:.0f} s: see 'flops status' and the nodes' logs")
        time.sleep(0.3)


def place_demo_data(client: ApiClient, nodes: list[str], learners: int,
                    directory: Path, *, report_timeout_s: float = 60.0) -> list[str]:
    """Push partition i to node i (replacing an earlier demo's); drop the tag elsewhere.

    Returns one line per node saying what it holds, once the manager's inventory shows it.

    Raises
    ------
    FlopsError
        If the stack has fewer nodes than learners, a push fails, or a node does not report.
    """
    import pyarrow.parquet as pq

    if len(nodes) < learners:
        raise FlopsError(f"the running stack has {len(nodes)} nodes for {learners} learners: "
                         f"run 'flops down', then 'flops demo --learners {learners}' (it starts "
                         "one node per learner)")
    files = directory / DATA_DIR
    files.mkdir(parents=True, exist_ok=True)
    pushed = {}
    for node, table in zip(nodes, demo_partitions(learners), strict=False):
        path = files / f"{node}.parquet"
        pq.write_table(table, path)
        data.push(client, node, DATA_TAG, path, name="digits", label=LABEL, replace=True)
        pushed[node] = table.num_rows
    for stale in data.listing(client, None):
        if stale["node"] in nodes[learners:] and stale["tag"] == DATA_TAG:
            data.rm(client, stale["node"], f"{stale['tag']}/{stale['name']}")
    reported = _reported(client, pushed, timeout_s=report_timeout_s)
    return [node_summary(node, reported[node]) for node in pushed]


def demo_repository(directory: Path, source: Path = EXAMPLE) -> tuple[str, str]:
    """Snapshot the digits example into a Git repository under ``directory``.

    Returns its URL and commit.

    Raises
    ------
    FlopsError
        If the example is not there (FLOps installed without its source tree) or git fails.
    """
    if not (source / "model_manager.py").exists():
        raise FlopsError(f"the digits example is not at {source}: run the demo from a FLOps "
                         "source checkout (git clone ...; pip install -e .)")
    bare, commit = snapshot(source, directory / SNAPSHOT_DIR)
    return bare.as_uri(), commit


def holdout_digits() -> tuple[Any, Any]:
    """The digits no learner trained on (same rows the mock data provider held out)."""
    from sklearn.datasets import load_digits

    from flops_dataplane.partitioners import holdout_split

    x, y = load_digits(return_X_y=True)
    _, held = holdout_split(len(y), fraction=HOLDOUT_FRACTION, seed=SEED)
    return x[held], y[held]


def check_endpoint(url: str, *, timeout_s: float = 60.0) -> dict[str, Any]:
    """Send the held-out digits to the inference endpoint; return accuracy and one example.

    Raises
    ------
    FlopsError
        If the endpoint does not answer correctly.
    """
    x, y = holdout_digits()
    columns = [f"x{i}" for i in range(x.shape[1])]
    body = {"dataframe_split": {"columns": columns, "data": x.tolist()}}
    try:
        response = requests.post(f"{url.rstrip('/')}/invocations", json=body, timeout=timeout_s)
    except requests.RequestException as exc:
        raise FlopsError(f"inference endpoint {url} did not answer: {exc}") from None
    if response.status_code != 200:
        raise FlopsError(f"inference endpoint answered {response.status_code}: "
                         f"{response.text[:300]}")
    predictions = [int(p) for p in response.json()["predictions"]]
    correct = sum(int(p == t) for p, t in zip(predictions, y.tolist(), strict=True))
    return {"accuracy": correct / len(y), "samples": len(y),
            "example": {"label": int(y[0]), "prediction": predictions[0]}}


def _wait_endpoint(client: ApiClient, project_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        project = client.request("GET", f"projects/{project_id}")
        url = (project.get("links") or {}).get("inference")
        if url:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    return str(url)
            except requests.RequestException:
                pass
        if project["phase"] not in ("serving", "post_training"):
            raise FlopsError(f"project {project_id} is {project['phase']}, not serving: "
                             f"{project.get('last_error') or 'no endpoint'}")
        time.sleep(0.5)
    raise FlopsError(f"the inference endpoint of {project_id} did not answer within "
                     f"{timeout_s:.0f} s")


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when the served model answered, 1 otherwise."""
    directory = stack.data_dir(args.data_dir)
    try:
        print(f"starting FLOps (data in {directory}) ...", flush=True)
        record = stack.start_stack(directory, nodes=max(stack.DEFAULT_NODES, args.learners))
        client = connect(directory)
        print(f"pushing Dirichlet(0.5) digits to {args.learners} nodes "
              f"(a fifth held out from all) ...", flush=True)
        for line in place_demo_data(client, list(record.get("nodes") or []), args.learners,
                                    directory):
            print(f"  {line}", flush=True)
        url, commit = demo_repository(directory)
        request = demo_request(url, commit, rounds=args.rounds, learners=args.learners)
        project = client.request("POST", "projects", json=request)
        pid = project["id"]
        print(f"submitted project {pid}: {args.learners} learners, {args.rounds} rounds, "
              f"data tag {DATA_TAG}", flush=True)
        for placed in project.get("placement") or []:
            print(f"  learner {placed['learner']} trains on {placed['node']} "
                  f"({placed['rows']} rows, which never leave it)", flush=True)
        for line in progress_lines(follow(client, pid, timeout_s=args.timeout)):
            print(f"  {line}", flush=True)
        url = _wait_endpoint(client, pid, timeout_s=120.0)
        project = client.request("GET", f"projects/{pid}")
        check = check_endpoint(url)
    except FlopsError as exc:
        print(f"flops demo: {exc.message}", file=sys.stderr)
        return 1
    model = project.get("model") or {}
    links = project.get("links") or {}
    example = check["example"]
    print("\n".join([
        "",
        f"MLflow UI:          {record['mlflow_url']}",
        f"training runs:      {links.get('mlflow_runs')}",
        f"registered model:   {model.get('registered_model')} version "
        f"{model.get('model_version')}  ({links.get('mlflow_model')})",
        f"inference endpoint: {url}/invocations",
        f"held-out digits:    {check['samples']} never seen by a learner, accuracy "
        f"{check['accuracy']:.3f}",
        f"one prediction:     digit {example['label']} -> predicted {example['prediction']}",
        "",
        "stop everything with: flops down"
        + (f" --data-dir {directory}" if args.data_dir else ""),
    ]), flush=True)
    return 0


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``flops demo``."""
    parser = sub.add_parser("demo", help="run the digits example end to end on this machine",
                            description=__doc__)
    parser.add_argument("--data-dir", dest="data_dir", type=Path,
                        help="state directory (default FLOPS_DATA_DIR or ~/.flops)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds to wait for training to end")
    parser.set_defaults(handler=run)
