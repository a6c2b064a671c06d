"""``flops project ...``: create, list, status, watch, logs, cancel and delete projects."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from flops_contracts.errors import FlopsError
from flops_manager.cli import local_repo, stack
from flops_manager.cli.client import ApiClient, connect
from flops_manager.cli.log_follow import FOLLOW_WINDOW, follow_done, new_lines
from flops_manager.cli.rejected import rejected_lines
from flops_manager.cli.watch import follow, progress_lines

WATCH_TIMEOUT_S = 24 * 3600.0
FAILED_PHASES = ("failed", "cancelled")


def read_request(path: Path, *, repo: str | None, ref: str | None,
                 snapshots: Path) -> dict[str, Any]:
    """Read a project file (YAML or JSON) into an API create request.

    The file holds ``{"repository": {...}, "spec": {...}}``, or only the spec (then ``--repo``
    names the repository). ``--repo`` and ``--ref`` override the file; a local ``--repo``
    directory that is not a Git repository is submitted as a snapshot under ``snapshots``
    (:mod:`flops_manager.cli.local_repo`).

    Raises
    ------
    FlopsError
        If the file cannot be read or parsed, or no repository is named.
    """
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FlopsError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FlopsError(f"{path} is not valid YAML or JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise FlopsError(f"{path} must hold a mapping with 'spec' (and 'repository')")
    if "spec" in loaded or "repository" in loaded:
        unknown = sorted(set(loaded) - {"spec", "repository"})
        if unknown:
            raise FlopsError(f"{path}: unknown top-level keys {unknown}; use spec, repository")
        request = {"spec": loaded.get("spec") or {}, "repository": dict(loaded.get("repository")
                                                                        or {})}
    else:
        request = {"spec": loaded, "repository": {}}
    if repo:
        found = local_repo.resolve(repo, ref=ref, snapshots=snapshots)
        request["repository"]["url"] = found.url
        if found.snapshot_of is not None:
            print(f"{found.snapshot_of} is not a Git repository: submitting a snapshot of its "
                  f"files (commit {found.ref})", file=sys.stderr)
        ref = found.ref
    if ref:
        request["repository"]["ref"] = ref
    if not request["repository"].get("url"):
        raise FlopsError(f"{path} names no repository: add repository.url or pass --repo")
    return request


def _print_json(value: Any) -> None:
    print(json.dumps(value, sort_keys=True), flush=True)  # one line, like train-local's


def placement_lines(placement: list[dict[str, Any]]) -> list[str]:
    """Which learner runs on which node (hierarchical: grouped under cluster aggregators)."""
    line = "  {pad}learner {learner} on node {node} (cluster {cluster}): {rows} rows"
    if not any(p.get("aggregator") for p in placement):
        return [line.format(pad="", **p) for p in placement]
    lines = []
    for cluster in sorted({p["cluster"] for p in placement}):
        members = [p for p in placement if p["cluster"] == cluster]
        lines.append(f"  cluster {cluster}: aggregator {members[0]['aggregator']}, "
                     f"{len(members)} learner(s)")
        lines.extend(line.format(pad="  ", **p) for p in members)
    return lines


def summary(project: dict[str, Any]) -> list[str]:
    """Lines describing a project's state for humans."""
    progress = project["progress"]
    lines = [
        f"project {project['id']} ({project['spec'].get('name') or 'unnamed'}): "
        f"{project['phase']}",
        f"  round {progress['round']}/{progress['total_rounds']}  metrics "
        + (", ".join(f"{k} {v:.4g}" for k, v in sorted(progress["metrics"].items())
                     if isinstance(v, int | float)) or "-"),
    ]
    if project.get("last_error"):
        lines.append(f"  error: {project['last_error']}")
    lines.extend(placement_lines(project.get("placement") or []))
    model = project.get("model") or {}
    if model.get("registered_model"):
        lines.append(f"  model: {model['registered_model']} version {model.get('model_version')}")
    for name, url in (project.get("links") or {}).items():
        if url:
            lines.append(f"  {name}: {url}")
    return lines


def _create(args: argparse.Namespace, client: ApiClient) -> int:
    request = read_request(args.file, repo=args.repo, ref=args.ref,
                           snapshots=stack.data_dir(args.data_dir) / local_repo.SNAPSHOT_DIR)
    project = client.request("POST", "projects", json=request)
    if args.json:
        _print_json(project)
    elif args.quiet:
        print(project["id"], flush=True)
    else:
        print(f"created project {project['id']} (phase {project['phase']})")
    if args.watch:
        return _follow(client, project["id"], as_json=args.json)
    return 0


def _list(args: argparse.Namespace, client: ApiClient) -> int:
    params: dict[str, Any] = {"page": args.page, "page_size": args.page_size}
    if args.cursor is not None:
        params = {"cursor": args.cursor, "page_size": args.page_size}
    if args.phase:
        params["phase"] = args.phase
    page = client.request("GET", "projects", params=params)
    if args.json:
        _print_json(page)
        return 0
    print(f"{'ID':18} {'NAME':20} {'PHASE':14} {'ROUND':>7}  ACCURACY")
    for p in page["items"]:
        acc = p["progress"]["metrics"].get("accuracy")
        shown = f"{acc:.3f}" if isinstance(acc, int | float) else "-"
        print(f"{p['id']:18} {(p['spec'].get('name') or '-')[:20]:20} {p['phase']:14} "
              f"{p['progress']['round']:>3}/{p['progress']['total_rounds']:<3}  {shown}")
    total = "" if page["total"] is None else f" of {page['total']}"
    print(f"({len(page['items'])}{total})")
    if page.get("next_cursor"):
        print(f"next page: flops project list --cursor {page['next_cursor']}")
    return 0


def _status(args: argparse.Namespace, client: ApiClient) -> int:
    project = client.request("GET", f"projects/{args.id}")
    if args.json:
        _print_json(project)
    else:
        print("\n".join(summary(project)))
    return 1 if project["phase"] in FAILED_PHASES else 0


def _follow(client: ApiClient, project_id: str, *, as_json: bool,
            timeout_s: float = WATCH_TIMEOUT_S) -> int:
    events = follow(client, project_id, timeout_s=timeout_s)
    if as_json:
        for event in events:
            print(json.dumps(event), flush=True)
    else:
        for line in progress_lines(events):
            print(line, flush=True)
    project = client.request("GET", f"projects/{project_id}")
    if not as_json:
        print("\n".join(summary(project)))
    return 1 if project["phase"] in FAILED_PHASES else 0


def _watch(args: argparse.Namespace, client: ApiClient) -> int:
    return _follow(client, args.id, as_json=args.json, timeout_s=args.timeout)


def _logs(args: argparse.Namespace, client: ApiClient) -> int:
    params: dict[str, Any] = {"lines": args.lines}
    if args.component:
        params["component"] = args.component
    seen: dict[str, list[str]] = {}
    for line in rejected_lines(client, args.id):  # an owner sees attacks on their project
        print(line, flush=True)
    while True:
        found = client.request("GET", f"projects/{args.id}/logs", params=params)["services"]
        for service in sorted(found):
            for instance, text in sorted(found[service].items()):
                window = text.splitlines()
                for line in new_lines(seen.get(instance, []), window):
                    print(f"{instance} | {line}", flush=True)
                seen[instance] = window
        if not args.follow:
            return 0
        project = client.request("GET", f"projects/{args.id}")
        if follow_done(project["phase"], args.component):
            return 0
        params["lines"] = max(args.lines, FOLLOW_WINDOW)
        time.sleep(1.0)


def _cancel(args: argparse.Namespace, client: ApiClient) -> int:
    project = client.request("POST", f"projects/{args.id}/cancel")
    _print_json(project) if args.json else print(f"project {args.id}: {project['phase']}")
    return 0


def _tracking(args: argparse.Namespace, client: ApiClient) -> int:
    found = client.request("GET", "tracking")
    if args.json:
        _print_json(found)
        return 0
    print(f"MLflow UI: {found['tracking_url']}")
    if "username" not in found:
        print("no login needed (the tracking server is open)")
        return 0
    print(f"login: {found['username']}\npassword: {found['password']}\n"
          "MLflow clients: export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    return 0


def _delete(args: argparse.Namespace, client: ApiClient) -> int:
    client.request("DELETE", f"projects/{args.id}")
    _print_json({"id": args.id, "deleting": True}) if args.json else print(
        f"project {args.id}: deleting (services are removed first)")
    return 0


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``flops project`` and its sub-commands."""
    parser = sub.add_parser("project", help="manage projects through the FLOps API",
                            description="Talks to FLOPS_API_URL (token: FLOPS_API_TOKEN) or the "
                            "stack started by `flops up`.")
    parser.add_argument("--data-dir", dest="data_dir", type=Path,
                        help="data directory of the `flops up` stack")
    commands = parser.add_subparsers(dest="project_command", required=True)

    def command(name: str, handler: Any, text: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=text, description=text)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(project_handler=handler)
        return p

    create = command("create", _create, "submit a project from a YAML or JSON file")
    create.add_argument("-f", "--file", type=Path, required=True, help="project file")
    create.add_argument("--repo", help="repository URL or local path (overrides the file)")
    create.add_argument("--ref", help="branch, tag or commit (overrides the file)")
    create.add_argument("--watch", action="store_true", help="follow it until training ends")
    create.add_argument("-q", "--quiet", action="store_true",
                        help="print only the project's id (for ID=$(flops project create ...))")
    listing = command("list", _list, "list your projects, newest first")
    listing.add_argument("--phase", help="only projects in this phase")
    listing.add_argument("--page", type=int, default=1, help="offset page (slower when deep)")
    listing.add_argument("--cursor", help="the next page after a listing (as it printed)")
    listing.add_argument("--page-size", dest="page_size", type=int, default=20)
    command("status", _status, "show one project").add_argument("id")
    watch = command("watch", _watch, "follow a project's events live")
    watch.add_argument("id")
    watch.add_argument("--timeout", type=float, default=WATCH_TIMEOUT_S, help="seconds")
    logs = command("logs", _logs, "show the output of a project's services")
    logs.add_argument("id")
    logs.add_argument("--component", help="one role, e.g. aggregator, learners, builder")
    logs.add_argument("--lines", type=int, default=200, help="last lines per instance")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines")
    command("cancel", _cancel, "cancel a running project").add_argument("id")
    command("delete", _delete, "cancel, remove services and delete a project").add_argument("id")
    command("tracking", _tracking, "show the MLflow UI's address and your MLflow login")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch ``flops project <command>``; API errors become a message and exit code 1."""
    try:
        client = connect(args.data_dir)
        code: int = args.project_handler(args, client)
        return code
    except FlopsError as exc:
        print(f"flops project {args.project_command}: {exc.message}", file=sys.stderr)
        return 1
