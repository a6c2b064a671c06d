"""The ``flops`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from flops_contracts.telemetry import disable_telemetry
from flops_manager.cli import data, demo, node, preflight, project, stack, train_local


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="flops", description="Federated learning operations")
    sub = parser.add_subparsers(dest="command", required=True)
    local = sub.add_parser(
        "train-local",
        help="train a repository federatedly with local processes",
        description="Start the aggregator(s) and learners as local processes on free loopback "
        "ports, show per-round progress and end with a summary.",
    )
    train_local.add_arguments(local)
    local.set_defaults(handler=train_local.run)
    stack.add_arguments(sub)
    project.add_arguments(sub)
    demo.add_arguments(sub)
    preflight.add_arguments(sub)
    node.add_arguments(sub)
    data.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``flops``."""
    logging.basicConfig(level=os.environ.get("FLOPS_LOG_LEVEL", "WARNING"))
    disable_telemetry(os.environ)  # inherited by every process a command starts
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # e.g. `flops project list | head`: the reader is gone, that's fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
