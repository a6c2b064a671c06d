"""Print the most expensive functions of the profiles ``sitecustomize.py`` wrote.

Usage: python bench/profiling/top.py DIR [--match aggregator] [--limit 25] [--sort tottime]
"""

from __future__ import annotations

import argparse
import pstats
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--match", default="", help="only profiles whose file name has this")
    parser.add_argument("--limit", type=int, default=25)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    args = parser.parse_args()
    files = sorted(str(p) for p in args.directory.glob("*.prof") if args.match in p.name)
    if not files:
        raise SystemExit(f"no profiles matching {args.match!r} in {args.directory}")
    stats = pstats.Stats(*files)
    stats.sort_stats(args.sort).print_stats(args.limit)


if __name__ == "__main__":
    main()
