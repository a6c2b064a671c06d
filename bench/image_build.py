"""Cold and warm container image builds of an example (learner + aggregator), and image sizes.

Measures ``image_builder.fl_images.build_images`` (what the builder service runs) with real
buildah and a docker-registry on a free loopback port:

* cold: empty container storage (its own graphroot, the base image pulled from the registry),
  empty builder cache: clone, runtime wheel, both images built, pushed;
* warm: the same inputs again: the registry already holds both images (no buildah call);
* code change: a commit that changes only user code (dependency layers reused);
* sizes per role and platform: uncompressed (as ``podman images`` shows) and compressed (the
  registry's layer blobs). Several ``--platform``: one manifest list per role (arm64 under
  emulation), the bases pushed as one manifest list (``scripts/push_base_manifest.sh``).

    python bench/image_build.py [--example digits_sklearn] [--platform linux/amd64
                                [--platform linux/arm64]] [--base-image IMAGE ...]

Needs buildah, docker-registry and the base image (``scripts/build_base_image.sh``). Prints a
Markdown table and the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flops_contracts.events import Component  # noqa: E402
from flops_messaging import EventEmitter, create_emitter  # noqa: E402
from image_builder import BuilderSettings  # noqa: E402
from image_builder.fl_images import build_images  # noqa: E402
from image_builder.runtime_layer import copy_runtime  # noqa: E402

DEFAULT_BASES = {"linux/amd64": "localhost/flops-python:3.11-bookworm",
                 "linux/arm64": "localhost/flops-python:3.11-bookworm-arm64"}
"""Local base image per platform (``scripts/build_base_image.sh``)."""
GIT = ["git", "-c", "user.name=b", "-c", "user.email=b@b.invalid"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {out.stderr[-2000:]}")
    return out.stdout


def _start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = root / "registry.yml"
    config.write_text("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {root / 'registry'}\n  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    with (root / "registry.log").open("wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"http://{address}/v2/", timeout=1).status_code == 200:
                return proc, address
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("docker-registry did not answer within 30 s")
        time.sleep(0.2)


def _repo(example: Path, target: Path) -> Path:
    shutil.copytree(example, target, ignore=shutil.ignore_patterns("__pycache__"))
    _run([*GIT, "init", "-q", "-b", "main", str(target)])
    _run([*GIT, "-C", str(target), "add", "-A"])
    _run([*GIT, "-C", str(target), "commit", "-qm", "bench"])
    return target


def _compressed_mb(registry: str, ref: str) -> float:
    """Sum of the layer and config blobs of one image (a digest reference of one platform)."""
    name, digest = ref.removeprefix(registry + "/").split("@", 1)
    url = f"http://{registry}/v2/{name}/manifests/{digest}"
    manifest = requests.get(url, headers={"Accept": ACCEPT}, timeout=30).json()
    blobs = [manifest["config"], *manifest["layers"]]
    return sum(int(b["size"]) for b in blobs) / 1e6


def _uncompressed_mb(ref: str, env: dict[str, str]) -> float:
    """Size as ``podman images`` shows it (the layers unpacked)."""
    _run(["buildah", "pull", "--quiet", "--tls-verify=false", ref], env=env)
    size = _run(["podman", "image", "inspect", "--format", "{{.Size}}", ref], env=env).strip()
    return int(size) / 1e6


def _push_base(base_images: list[str], base_ref: str, env: dict[str, str]) -> None:
    """Push the local base image(s) to the registry; several become one manifest list."""
    if len(base_images) == 1:
        _run(["buildah", "push", "--quiet", "--tls-verify=false", base_images[0],
              f"docker://{base_ref}"], env=env)
        return
    _run(["bash", str(ROOT / "scripts" / "push_base_manifest.sh"), base_ref, *base_images],
         env={**env, "FLOPS_REGISTRY_TLS_VERIFY": "false"})


@dataclasses.dataclass
class BenchBuild:
    """What a benchmark build needs: settings, the storage environment, the registry."""

    settings: BuilderSettings
    env: dict[str, str]
    registry: str
    repo: Path
    emitter: EventEmitter


@contextlib.contextmanager
def bench_builder(example: Path, base_images: list[str], work: Path, platforms: list[str],
                  pip_from_host: bool = False) -> Iterator[BenchBuild]:
    """Container storage of its own under ``work``, a registry holding the base image(s), the
    example committed to a new repository, and builder settings for it; all removed after."""
    storage = work / "storage"
    conf = work / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\nrunroot = "{storage}/run"\n'
                    f'graphroot = "{storage}/graph"\n')
    regs = work / "registries.conf"
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    proc, registry = _start_registry(work)
    try:
        regs.write_text(f'unqualified-search-registries = []\n[[registry]]\nlocation = '
                        f'"{registry}"\ninsecure = true\n')
        env["CONTAINERS_REGISTRIES_CONF"] = str(regs)
        base_ref = f"{registry}/flops/python:3.11-bookworm"
        # from the default storage (where scripts/build_base_image.sh put it) to the registry
        _push_base(base_images, base_ref, {k: v for k, v in env.items()
                                           if k != "CONTAINERS_STORAGE_CONF"})
        os.environ.update(CONTAINERS_STORAGE_CONF=str(conf),
                          CONTAINERS_REGISTRIES_CONF=str(regs))
        runtime = work / "runtime" / "src"
        copy_runtime(ROOT, runtime)
        repo = _repo(example, work / "repo" / example.name)
        settings = BuilderSettings(
            target="images", project_id="bench", cache_dir=work / "cache", allow_local=True,
            repository_url=f"file://{repo}", registry=registry, registry_tls_verify=False,
            base_image=base_ref, runtime_source=runtime, build_timeout_s=3600,
            platforms=platforms, pip_from_host=pip_from_host,
            extra_ca_bundle=CA_BUNDLE if CA_BUNDLE.is_file() else None)
        emitter = create_emitter(f"file://{work / 'events.jsonl'}", project_id="bench",
                                 component=Component.BUILDER, instance="bench")
        try:
            yield BenchBuild(settings, env, registry, repo, emitter)
        finally:
            emitter.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        os.environ.pop("CONTAINERS_STORAGE_CONF", None)
        os.environ.pop("CONTAINERS_REGISTRIES_CONF", None)
        subprocess.run(["buildah", "rmi", "--all", "--force"], env=env, capture_output=True,
                       timeout=300, check=False)


def measure(example: Path, base_images: list[str], work: Path,
            platforms: list[str], pip_from_host: bool = False) -> dict[str, Any]:
    """Run the cold, warm and code-change builds; return timings and sizes per platform."""
    with bench_builder(example, base_images, work, platforms, pip_from_host) as bench:
        settings, repo, emitter = bench.settings, bench.repo, bench.emitter
        runs: dict[str, Any] = {}
        for label in ("cold", "warm"):
            start = time.monotonic()
            result = build_images(settings, emitter)
            runs[label] = {"seconds": round(time.monotonic() - start, 1),
                           "cache_hit": result.cache_hit, "timings": result.timings}
        model = repo / "model_manager.py"
        model.write_text(model.read_text() + "\n# a code change\n")
        _run([*GIT, "-C", str(repo), "commit", "-qam", "code change"])
        start = time.monotonic()
        changed = build_images(settings, emitter)
        runs["code_change"] = {"seconds": round(time.monotonic() - start, 1),
                               "cache_hit": changed.cache_hit, "timings": changed.timings}
        sizes = {f"{role} {plat}": {
                     "uncompressed_mb": round(_uncompressed_mb(ref, bench.env), 1),
                     "compressed_mb": round(_compressed_mb(bench.registry, ref), 1)}
                 for role, by_platform in changed.details["variants"].items()
                 for plat, ref in by_platform.items()}
        return {"example": example.name, "platforms": platforms, "runs": runs,
                "sizes": sizes, "images": result.images}


def table(results: list[dict[str, Any]]) -> str:
    """Render the results as Markdown tables: build times, then sizes per role and platform."""
    lines = ["| example | platforms | cold build s | warm (cache hit) s | code change s |",
             "|---|---|---|---|---|"]
    for r in results:
        runs = r["runs"]
        lines.append(f"| {r['example']} | {' + '.join(r['platforms'])} | "
                     f"{runs['cold']['seconds']} | {runs['warm']['seconds']} | "
                     f"{runs['code_change']['seconds']} |")
    lines += ["", "| example | image | uncompressed MB | compressed MB |", "|---|---|---|---|"]
    for r in results:
        for image, size in r["sizes"].items():
            lines.append(f"| {r['example']} | {image} | {size['uncompressed_mb']:.0f} | "
                         f"{size['compressed_mb']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    """Run the benchmark for each ``--example``; print the table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", action="append", default=[],
                        help="example directory name under examples/ (repeatable)")
    parser.add_argument("--base-image", action="append", default=[],
                        help="local base image, one per platform in --platform order "
                             "(default: localhost/flops-python:3.11-bookworm[-arm64])")
    parser.add_argument("--platform", action="append", default=[],
                        help="platform to build for (repeatable; default linux/amd64)")
    parser.add_argument("--pip-from-host", action="store_true",
                        help="builds install from this host's pip configuration "
                             "(e.g. local CPU wheels of PyTorch)")
    args = parser.parse_args()
    platforms = args.platform or ["linux/amd64"]
    bases = args.base_image or [DEFAULT_BASES[p] for p in platforms]
    results = []
    for name in args.example or ["digits_sklearn"]:
        with tempfile.TemporaryDirectory(prefix="flops-bench-build-", dir="/var/tmp") as tmp:
            results.append(measure(ROOT / "examples" / name, bases, Path(tmp), platforms,
                                   args.pip_from_host))
    print(table(results))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
