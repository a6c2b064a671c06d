"""The shared FLOps runtime layer: one virtual environment per (runtime version, Python).

The runtime (``learner_base``, ``flops_contracts``, ... and their dependencies: flwr, mlflow, ...)
is the heavy, common part of every learner environment. It is installed once, non-editable, from
a snapshot of the runtime source tree into ``<cache>/runtime/<key>/venv``. Project environments
reach it through a ``.pth`` file and are pinned to its exact versions by ``constraints.txt``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import logging
import shutil
import tomllib
from pathlib import Path

from image_builder import commands
from image_builder.cache import CacheLayout, locked, read_marker, remove_tree, write_marker
from image_builder.toolchain import VenvTool, venv_python

logger = logging.getLogger(__name__)

MARKER = "layer.json"
_EXCLUDED_DIRS = frozenset({"tests", "examples", "bench", "build", "dist", "scripts"})
_TOP_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE")
_PROBE = (
    "import platform, sys, sysconfig; "
    "print(platform.python_implementation().lower() + '-' + platform.python_version() + '-' "
    "+ platform.machine()); print(sysconfig.get_paths()['purelib'])"
)


@dataclasses.dataclass(frozen=True)
class RuntimeLayer:
    """A ready runtime layer.

    Attributes
    ----------
    key
        ``<runtime version>-<python tag>-<source digest prefix>``.
    venv
        Its virtual environment.
    site_packages
        The environment's ``purelib`` directory (what project envs add to their path).
    constraints
        Pins of every installed distribution except the runtime itself.
    python_tag
        Implementation, version and machine of the interpreter, e.g. ``cpython-3.11.7-x86_64``.
    """

    key: str
    venv: Path
    site_packages: Path
    constraints: Path
    python_tag: str


def _package_dirs(source: Path) -> list[Path]:
    """Top-level packages of the runtime (filtered by setuptools' ``include`` if declared)."""
    include: list[str] = []
    pyproject = source / "pyproject.toml"
    if pyproject.is_file():
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        found = data.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
        include = [str(p) for p in found.get("include", [])]
    dirs = [
        d for d in sorted(source.iterdir())
        if d.is_dir() and (d / "__init__.py").is_file() and d.name not in _EXCLUDED_DIRS
    ]
    if include:
        dirs = [d for d in dirs if any(fnmatch.fnmatch(d.name, pat) for pat in include)]
    return dirs


def _runtime_files(source: Path) -> list[Path]:
    files = [source / name for name in _TOP_FILES if (source / name).is_file()]
    for package in _package_dirs(source):
        files += sorted(
            p for p in package.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
        )
    return files


def runtime_version(source: Path) -> str:
    """Return ``<version>-<sha256 prefix of the runtime files>`` of a runtime source tree."""
    digest = hashlib.sha256()
    for path in _runtime_files(source):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    version = "0"
    pyproject = source / "pyproject.toml"
    if pyproject.is_file():
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        version = str(data.get("project", {}).get("version", "0"))
    return f"{version}-{digest.hexdigest()[:16]}"


def probe_python(python: str, *, timeout: float) -> tuple[str, Path]:
    """Return ``(python tag, purelib directory)`` of an interpreter."""
    out = commands.run([python, "-I", "-c", _PROBE], timeout=timeout, what="python probe")
    tag, purelib = out.stdout.strip().splitlines()[:2]
    return tag, Path(purelib)


def ensure_runtime(
    *,
    cache: CacheLayout,
    tool: VenvTool,
    source: Path,
    python: str,
    system_site_packages: bool,
    timeout: float,
) -> tuple[RuntimeLayer, bool]:
    """Return the runtime layer for ``source`` and ``python``, building it if needed.

    Returns
    -------
    tuple[RuntimeLayer, bool]
        The layer and whether it came from the cache.

    Raises
    ------
    BuildError
        If creating the environment or installing the runtime fails.
    """
    python_tag, _ = probe_python(python, timeout=timeout)
    key = f"{runtime_version(source)}-{python_tag}" + ("-sys" if system_site_packages else "")
    root = cache.runtime(key)
    layer = _from_marker(root, key)
    if layer is not None:
        return layer, True
    with locked(cache.lock_file(f"runtime-{key}")):
        layer = _from_marker(root, key)
        if layer is not None:
            return layer, True
        remove_tree(root)
        root.mkdir(parents=True)
        snapshot = root / "src"
        copy_runtime(source, snapshot)
        venv = root / "venv"
        tool.create(venv, python=python, system_site_packages=system_site_packages,
                    timeout=timeout)
        tool.install(venv, packages=[str(snapshot)], timeout=timeout)
        runtime_name = _project_name(snapshot)
        pins = [
            line for line in tool.freeze(venv, timeout=timeout)
            if "==" in line and not line.lower().startswith(f"{runtime_name}==")
        ]
        constraints = root / "constraints.txt"
        constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
        _, site_packages = probe_python(str(venv_python(venv)), timeout=timeout)
        layer = RuntimeLayer(key, venv, site_packages, constraints, python_tag)
        write_marker(root / MARKER, {
            "key": key, "site_packages": str(site_packages), "python_tag": python_tag,
            "tool": tool.name,
        })
        logger.info("built runtime layer %s", key)
        return layer, False


def _from_marker(root: Path, key: str) -> RuntimeLayer | None:
    marker = read_marker(root / MARKER)
    if marker is None:
        return None
    return RuntimeLayer(key, root / "venv", Path(str(marker["site_packages"])),
                        root / "constraints.txt", str(marker["python_tag"]))


def _project_name(source: Path) -> str:
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return "flops"
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return str(data.get("project", {}).get("name", "flops")).lower().replace("_", "-")


def copy_runtime(source: Path, target: Path) -> None:
    """Copy the runtime files (not tests, examples, build outputs) to ``target``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    target.mkdir(parents=True)
    for name in _TOP_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    for package in _package_dirs(source):
        shutil.copytree(package, target / package.name, ignore=ignore)
