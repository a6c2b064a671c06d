"""Role-specific images against one shared environment: sizes and Python start-up per role.

Builds an example's learner and aggregator images twice with ``build_images`` (real buildah,
a docker-registry on a free loopback port, container storage of its own): once with every
role given the whole dependency set ("shared", what FLOps built before role-specific images)
and once pruned per role (``image_builder.role_env``, what it builds now). The dependency
layer is built once and shared by both. Then, side by side and interleaved, it measures:

* sizes per role: uncompressed (as ``podman images`` shows) and compressed (registry blobs);
* start-up: ``podman run`` of each image running the role's imports (the modules
  ``image_builder.role_env`` probes, and the repository's ModelManager class), reporting the
  in-container import time and the whole ``podman run`` wall time; ``--repeat`` runs each.

    python bench/role_images.py [--example digits_sklearn] [--repeat 5]

Needs buildah, podman, docker-registry and the base image (``scripts/build_base_image.sh``).
Prints a Markdown table and the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.image_build import (  # noqa: E402
    _compressed_mb,
    _run,
    _uncompressed_mb,
    bench_builder,
)
from image_builder import BuilderSettings, fl_images  # noqa: E402
from image_builder.containerfile import PACKAGES_REPORT  # noqa: E402
from image_builder.role_env import ROLE_PROBES  # noqa: E402

STARTUP = """
import importlib, sys, time
from pathlib import Path
start = time.perf_counter()
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        pass
from learner_base.repository import load_model_manager_class
load_model_manager_class(Path("/opt/flops/repo"))
print(round(time.perf_counter() - start, 3))
"""


def _build(settings: BuilderSettings, emitter: Any, prune: bool) -> dict[str, str]:
    """Build both roles, pruned or with the shared environment; return role -> ref."""
    roles = {"LEARNER": fl_images.LEARNER, "AGGREGATOR": fl_images.AGGREGATOR}
    try:
        for name, role in roles.items():
            setattr(fl_images, name, dataclasses.replace(role, prune=prune))
        result = fl_images.build_images(settings, emitter)
    finally:
        for name, role in roles.items():
            setattr(fl_images, name, role)
    return {role: by_platform["linux/amd64"]
            for role, by_platform in result.details["variants"].items()}


def _startup(ref: str, role: str, env: dict[str, str]) -> tuple[float, float]:
    """Return (in-container import seconds, podman run wall seconds) of one start."""
    code = STARTUP.format(modules=list(ROLE_PROBES[role].modules))
    start = time.monotonic()
    out = _run(["podman", "run", "--rm", "--network", "none", "--entrypoint", "python", ref,
                "-c", code], env=env, timeout=300)
    return float(out.strip().splitlines()[-1]), time.monotonic() - start


def _largest_kept(ref: str, env: dict[str, str], top: int = 15) -> list[list[Any]]:
    """Return ``[name, MB, why]`` of the ``top`` largest distributions the image keeps."""
    out = _run(["podman", "run", "--rm", "--network", "none", "--entrypoint", "cat", ref,
                f"/opt/flops/venv/{PACKAGES_REPORT}"], env=env, timeout=120)
    kept = json.loads(out)["kept"]
    rows = sorted(((entry["name"], round(entry["bytes"] / 1e6, 1), entry["why"])
                   for entry in kept), key=lambda row: -row[1])
    return [list(row) for row in rows[:top]]


def measure(example: Path, base_image: str, work: Path, repeat: int) -> dict[str, Any]:
    """Build both variants, then measure sizes and start-ups side by side."""
    with bench_builder(example, [base_image], work, ["linux/amd64"]) as bench:
        images = {"shared": _build(bench.settings, bench.emitter, prune=False),
                  "per-role": _build(bench.settings, bench.emitter, prune=True)}
        results: dict[str, Any] = {}
        for variant, refs in images.items():
            for role, ref in refs.items():
                results[f"{role} {variant}"] = {
                    "uncompressed_mb": round(_uncompressed_mb(ref, bench.env), 1),
                    "compressed_mb": round(_compressed_mb(bench.registry, ref), 1),
                    "imports_s": [], "run_s": []}
                if variant == "per-role":
                    results[f"{role} {variant}"]["largest_kept"] = _largest_kept(ref, bench.env)
        for _ in range(repeat):  # interleaved: both variants see the same machine load
            for variant, refs in images.items():
                for role, ref in refs.items():
                    imports, wall = _startup(ref, role, bench.env)
                    results[f"{role} {variant}"]["imports_s"].append(imports)
                    results[f"{role} {variant}"]["run_s"].append(round(wall, 3))
        for entry in results.values():
            entry["imports_median_s"] = statistics.median(entry["imports_s"])
            entry["run_median_s"] = round(statistics.median(entry["run_s"]), 3)
        return {"example": example.name, "repeat": repeat, "results": results}


def table(report: dict[str, Any]) -> str:
    """Return the Markdown table of one report."""
    lines = ["| image | uncompressed | compressed | imports at start: median (fastest) | "
             "`podman run`: median (fastest) |", "|---|---|---|---|---|"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['uncompressed_mb']} MB | {r['compressed_mb']} MB | "
                     f"{r['imports_median_s']:.2f} s ({min(r['imports_s']):.2f} s) | "
                     f"{r['run_median_s']:.2f} s ({min(r['run_s']):.2f} s) |")
    return "\n".join(lines)


def main() -> int:
    """Parse arguments, measure, print the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", default="digits_sklearn")
    parser.add_argument("--base-image", default="localhost/flops-python:3.11-bookworm")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flops-bench-roles-", dir="/var/tmp") as tmp:
        report = measure(ROOT / "examples" / args.example, args.base_image, Path(tmp),
                         args.repeat)
    print(table(report))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
