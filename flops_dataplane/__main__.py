"""``python -m flops_dataplane serve|mock-provider``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the data server (``serve``) or the mock data provider (``mock-provider``)."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["serve"]:
        from flops_dataplane.server import main as serve

        return serve()
    if args == ["mock-provider"]:
        from flops_dataplane.mock_provider import main as provide

        return provide()
    print("usage: python -m flops_dataplane serve|mock-provider (settings: FLOPS_* variables)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
