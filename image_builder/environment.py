"""Project environments: a small venv with the repository's dependencies over the runtime layer.

A project environment is created with the same interpreter as the runtime layer. A
``_flops_runtime.pth`` file adds the layer's ``site-packages`` after the project's own (so the
FLOps runtime is importable without being installed again), and the repository's requirements
are installed with the layer's versions as constraints: a package both need is installed at the
exact version the runtime was built with. A requirement that excludes a runtime pin is dropped
with a note (:mod:`image_builder.pin_policy`, the policy of every target) instead of failing
the build or breaking the runtime at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path

from image_builder.cache import CacheLayout, locked, read_marker, remove_tree, write_marker
from image_builder.dependencies import DependencySpec, user_requirement_lines
from image_builder.outcome import BuildError
from image_builder.pin_policy import apply_pin_policy, parse_pins
from image_builder.pins import extras_pins
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
    notes
        Messages about the repository's requirements that were dropped (one per conflict).
    """

    venv: Path
    python: Path
    cache_key: str
    cache_hit: bool
    notes: tuple[str, ...] = ()


_PATH_OPTIONS = ("-r ", "-c ", "-e ", "--requirement ", "--constraint ", "--editable ")


def _rebase(line: str, base: Path) -> str:
    """Make a relative path in a requirements line (``-r x.txt``, ``./pkg``) absolute."""
    for option in _PATH_OPTIONS:
        if line.startswith(option):
            target = line[len(option):].strip()
            if "://" not in target and not Path(target).is_absolute():
                return f"{option}{base / target}"
            return line
    if line.startswith("."):
        return str(base / line)
    return line


def requirement_lines(
    deps: DependencySpec, *, pins: Mapping[str, str], extra_pins: Mapping[str, str] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the lines to install into the project environment and the policy's notes.

    The pin policy drops conflicting requirements; options and local paths are kept, with
    relative paths made absolute (the generated file lives outside the repository).
    """
    policy = apply_pin_policy(user_requirement_lines(deps), pins=pins, source=deps.path.name,
                              extra_pins=extra_pins)
    base = deps.path.parent
    lines = [*policy.requirements, *(_rebase(line, base)
                                     for line in (*policy.options, *policy.invalid))]
    return tuple(lines), policy.notes


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
    pins = parse_pins(runtime.constraints.read_text(encoding="utf-8").splitlines())
    lines, notes = requirement_lines(deps, pins=pins, extra_pins=extras_pins())
    found = lookup(cache, key)
    if found is not None:
        return dataclasses.replace(found, notes=notes)
    with locked(cache.lock_file(f"env-{key}")):
        found = lookup(cache, key)
        if found is not None:
            return dataclasses.replace(found, notes=notes)
        root = cache.env(key)
        remove_tree(root)
        root.mkdir(parents=True)
        venv = root / "venv"
        tool.create(venv, python=python, system_site_packages=False, timeout=timeout)
        _, site_packages = probe_python(str(venv_python(venv)), timeout=timeout)
        (site_packages / PTH_NAME).write_text(
            f"import site; site.addsitedir({str(runtime.site_packages)!r})\n", encoding="utf-8"
        )
        if lines:
            requirements = root / "requirements.generated.txt"
            requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
            try:
                tool.install(venv, requirement_files=[requirements],
                             constraints=runtime.constraints, timeout=timeout)
            except BuildError as exc:
                raise BuildError(
                    f"installing the requirements of {deps.path.name} (the repository's "
                    f"dependency file) failed: {exc.message}",
                    details=exc.details,
                ) from exc
        write_marker(root / MARKER, {
            "commit": commit, "dependency_hash": deps.digest, "runtime": runtime.key,
            "dependency_file": deps.path.name, "tool": tool.name,
        })
        return ProjectEnv(venv, venv_python(venv), key, False, notes)
