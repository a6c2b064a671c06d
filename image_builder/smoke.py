"""Smoke check run *inside a built environment*: ``<env>/bin/python -I smoke.py REPO_DIR``.

It imports only the FLOps runtime (not this package, which the environment does not contain),
instantiates the repository's ModelManager, reads its parameters, and prints one JSON line
``{"class": ..., "parameters": [[shape, dtype], ...]}``. On a contract violation it prints the
contract's message to stderr and exits with status 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONTRACT_EXIT = 3


def main(argv: list[str] | None = None) -> int:
    """Check the repository given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: smoke.py REPO_DIR", file=sys.stderr)
        return 2
    from flops_contracts.errors import ContractError
    from learner_base.legacy_manager import unwrap
    from learner_base.repository import load_model_manager

    try:
        manager = load_model_manager(Path(args[0]))
        parameters = manager.get_model_parameters()
    except ContractError as exc:
        print(exc.message, file=sys.stderr)
        return CONTRACT_EXIT
    shapes = [[list(getattr(p, "shape", ())), str(getattr(p, "dtype", ""))] for p in parameters]
    print(json.dumps({"class": type(unwrap(manager)).__name__, "parameters": shapes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
