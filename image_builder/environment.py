"""Project environments: a small venv with the repository's dependencies over the runtime layer.

A project environment is created with the same interpreter as the runtime layer. A
``_flops_runtime.pth`` file adds the layer's ``site-packages`` after the project's own (so the
FLOps runtime is importable without being installed again), and the repository's requirements
are installed with the layer's versions as constraints: a package both need is installed at the
exact version the runtime was built with, and a requirement that conflicts with the runtime
fails the build with the resolver's message instead of breaking the runtime at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from image_builder.cache import CacheLayout, locked, read_marker, remove_tree, write_marker
from image_builder.dependencies import DependencySpec
from image_builder.runtime_layer import RuntimeLayer, probe_python
from image_builder.toolchain import VenvTool, venv_python

MARKER = "build.json"
PTH_NAME = "_flops_runtime.pth"


@dataclasses.dataclass(frozen=True)
class ProjectEnv:
    """A ready project environment.

    Attributes
    ----------
    venv
        The virtual environment.
    python
        Its interpreter.
    cache_key
        Key of the environment in the cache.
    cache_hit
        Whether it was reused.
    """

    venv: Path
    python: Path
    cache_key: str
    cache_hit: bool


def cache_key(*, commit: str, dependency_hash: str, runtime_key: str) -> str:
    """Return the cache key of a project environment (sha256 prefix of its three inputs)."""
    text = f"{commit}\n{dependency_hash}\n{runtime_key}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def lookup(cache: CacheLayout, key: str) -> ProjectEnv | None:
    """Return the cached environment with ``key``, or ``None``."""
    root = cache.env(key)
    if read_marker(root / MARKER) is None:
        return None
    return ProjectEnv(root / "venv", venv_python(root / "venv"), key, True)


def ensure_project_env(
    *,
    cache: CacheLayout,
    tool: VenvTool,
    runtime: RuntimeLayer,
    deps: DependencySpec,
    commit: str,
    python: str,
    timeout: float,
) -> ProjectEnv:
    """Return the environment for ``commit`` with ``deps`` over ``runtime``, building it if needed.

    Raises
    ------
    BuildError
        If the environment cannot be created or a dependency cannot be installed
        (``details["output_tail"]`` holds the installer's output).
    """
    key = cache_key(commit=commit, dependency_hash=deps.digest, runtime_key=runtime.key)
    found = lookup(cache, key)
    if found is not None:
        return found
    with locked(cache.lock_file(f"env-{key}")):
        found = lookup(cache, key)
        if found is not None:
            return found
        root = cache.env(key)
        remove_tree(root)
        root.mkdir(parents=True)
        venv = root / "venv"
        tool.create(venv, python=python, system_site_packages=False, timeout=timeout)
        _, site_packages = probe_python(str(venv_python(venv)), timeout=timeout)
        (site_packages / PTH_NAME).write_text(
            f"import site; site.addsitedir({str(runtime.site_packages)!r})\n", encoding="utf-8"
        )
        requirements = deps.requirements_file(root / "requirements.generated.txt")
        if requirements is not None:
            tool.install(venv, requirement_files=[requirements], constraints=runtime.constraints,
                         timeout=timeout)
        write_marker(root / MARKER, {
            "commit": commit, "dependency_hash": deps.digest, "runtime": runtime.key,
            "dependency_file": deps.path.name, "tool": tool.name,
        })
        return ProjectEnv(venv, venv_python(venv), key, False)
