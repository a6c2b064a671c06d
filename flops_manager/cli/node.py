"""``flops node serve|token|ls``: run a node agent, enroll it, list your nodes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from flops_contracts.errors import FlopsError
from flops_manager.cli import stack
from flops_manager.cli.client import connect


def manager_url(explicit: str | None, data_dir: Path | None) -> str:
    """``--manager``, else ``FLOPS_API_URL``, else the `flops up` stack's API.

    Raises
    ------
    FlopsError
        If none is known.
    """
    if explicit:
        return explicit
    if os.environ.get("FLOPS_API_URL"):
        return os.environ["FLOPS_API_URL"]
    state = stack.read_state(stack.data_dir(data_dir))
    if state and state.get("api_url"):
        return str(state["api_url"])
    raise FlopsError("no manager known: pass --manager URL or set FLOPS_API_URL")


def _serve(args: argparse.Namespace) -> int:
    from flops_dataplane.node_agent import NodeAgentSettings, start_agent

    logging.getLogger("flops_dataplane").setLevel(logging.INFO)
    try:
        settings = NodeAgentSettings(
            name=args.name, cluster=args.cluster, data_dir=args.node_dir.resolve(),
            manager_url=manager_url(args.manager, args.data_dir), host=args.host,
            port=args.port, advertise_host=args.advertise_host,
            report_interval_s=args.report_interval)
        agent = start_agent(settings)
    except (FlopsError, ValueError) as exc:
        print(f"flops node serve: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: agent.stop())
    print(f"node {settings.name} serving {settings.data_dir} at {agent.location}", flush=True)
    agent.run()
    return 0


def _token(args: argparse.Namespace) -> int:
    try:
        answer: dict[str, Any] = connect(args.data_dir).request(
            "POST", f"nodes/{args.name}/token")
    except FlopsError as exc:
        print(f"flops node token: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(answer) if args.json else answer["token"])
    return 0


def _ls(args: argparse.Namespace) -> int:
    try:
        items = connect(args.data_dir).request("GET", "nodes")["items"]
    except FlopsError as exc:
        print(f"flops node ls: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(items))
        return 0
    for node in items:
        tags = sorted({d["tag"] for d in node["datasets"]})
        print(f"{node['name']:16} {node['cluster']:10} {node['platform']:12} "
              f"{node['status']:8} {node['location'] or '-':24} tags: {', '.join(tags) or '-'}")
    return 0


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``flops node``."""
    parser = sub.add_parser("node", help="FLOps nodes: data servers where the data lives")
    parser.add_argument("--data-dir", dest="data_dir", type=Path,
                        help="data directory of the `flops up` stack")
    commands = parser.add_subparsers(dest="node_command", required=True)
    serve = commands.add_parser(
        "serve", help="run this machine's node agent (data server + inventory reports)",
        description="First start: FLOPS_NODE_TOKEN must hold a token from `flops node token`. "
        "Every option can also come from the environment (FLOPS_NODE_NAME, FLOPS_NODE_CLUSTER, "
        "FLOPS_NODE_DIR, FLOPS_NODE_HOST, FLOPS_NODE_PORT, FLOPS_NODE_ADVERTISE_HOST, "
        "FLOPS_NODE_REPORT_INTERVAL_S; the node container image sets some); options win.")
    env = os.environ.get
    serve.add_argument("--name", default=env("FLOPS_NODE_NAME"),
                       required=not env("FLOPS_NODE_NAME"),
                       help="node name (unique among your nodes)")
    serve.add_argument("--cluster", default=env("FLOPS_NODE_CLUSTER", "local"),
                       help="cluster the node belongs to")
    serve.add_argument("--data-dir", dest="node_dir", type=Path, default=env("FLOPS_NODE_DIR"),
                       required=not env("FLOPS_NODE_DIR"),
                       help="the node's own directory: credentials, data, access records "
                       "(`flops node --data-dir STACK serve ...` names the stack's)")
    serve.add_argument("--manager", help="manager URL (default FLOPS_API_URL or `flops up`)")
    serve.add_argument("--host", default=env("FLOPS_NODE_HOST", "127.0.0.1"),
                       help="data server bind address")
    # string defaults go through ``type`` too: a bad variable is a usage error naming the option
    serve.add_argument("--port", type=int, default=env("FLOPS_NODE_PORT", "0"),
                       help="data server port (0 = any)")
    serve.add_argument("--advertise-host", dest="advertise_host",
                       default=env("FLOPS_NODE_ADVERTISE_HOST"),
                       help="host learners reach the data server at (default --host)")
    serve.add_argument("--report-interval", dest="report_interval", type=float,
                       default=env("FLOPS_NODE_REPORT_INTERVAL_S", "10"),
                       help="seconds between inventory reports")
    serve.set_defaults(handler=_serve)
    token = commands.add_parser("token", help="issue a single-use token enrolling a node")
    token.add_argument("--name", required=True)
    token.add_argument("--json", action="store_true")
    token.set_defaults(handler=_token)
    listing = commands.add_parser("ls", help="list your nodes")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_ls)
