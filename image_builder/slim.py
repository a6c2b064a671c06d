"""Strip from an image's virtual environment what the runtime never uses.

Run inside the image build (``python -B -m image_builder.slim VENV``) after every package is
installed. It removes:

* ``pip``, ``wheel`` and ``setuptools`` (with ``pkg_resources`` and ``_distutils_hack``) and
  their console scripts: nothing installs packages at run time. ``setuptools`` stays if an
  installed distribution declares it as a requirement (old code importing ``pkg_resources``).
* test suites: directories named ``tests`` or ``test`` inside packages of site-packages;
* byte code for other optimization levels (``*.opt-1.pyc``, ``*.opt-2.pyc``); the plain
  ``*.pyc`` stay (without them every container start compiles the imports again: ~3 s -> ~11 s
  for learner_base + sklearn + mlflow + flwr). A role's image later keeps only those of the
  packages the role loads modules from (:func:`drop_bytecode`, run by
  ``image_builder.role_env``);
* C/C++/Cython sources and headers, type stubs (``*.pyi``) and ``include`` directories.

Licenses, metadata (``*.dist-info``) and data files stay.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata as metadata
import os
import shutil
import sys
import sysconfig
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

TOOLS = ("pip", "wheel", "setuptools")
"""Installer distributions removed from images (setuptools only when nothing needs it)."""
TEST_DIRS = frozenset({"tests", "test"})
SOURCE_SUFFIXES = frozenset({".pyi", ".h", ".hpp", ".hh", ".c", ".cc", ".cpp", ".cxx",
                             ".pxd", ".pyx", ".pxi"})
OTHER_OPT_LEVELS = (".opt-1.pyc", ".opt-2.pyc")


@dataclasses.dataclass
class SlimReport:
    """What was removed (paths relative to the environment) and how many bytes."""

    removed: list[str] = dataclasses.field(default_factory=list)
    bytes_freed: int = 0


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def _remove(path: Path, root: Path, report: SlimReport) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    report.bytes_freed += _size(path)
    report.removed.append(str(path.relative_to(root)))
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def needed_tools(dists: Iterable[metadata.Distribution]) -> set[str]:
    """Return the installer distributions (:data:`TOOLS`) another distribution requires."""
    needed: set[str] = set()
    for dist in dists:
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name in TOOLS:
            continue
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(req.name) in TOOLS:
                needed.add(canonicalize_name(req.name))
    return needed


def real_paths(paths: Iterable[Path]) -> list[Path]:
    """Each path with its directory resolved (symlinks, ``..``) and its own name kept.

    A file that is itself a symlink stays the link, so removing it never removes what it
    points to. Every directory is resolved once: a distribution's RECORD names tens of
    thousands of files in a few thousand directories, and ``Path.resolve()`` per file (an
    ``lstat`` per path component, then a ``stat``) took minutes under qemu.
    """
    directories: dict[str, Path] = {}
    found = []
    for path in paths:
        head, name = os.path.split(os.fspath(path))
        real = directories.get(head)
        if real is None:
            real = directories[head] = Path(os.path.realpath(head or "."))
        found.append(real / name)
    return found


def record_files(dist: metadata.Distribution) -> list[Path]:
    """The real paths (:func:`real_paths`) of every file the distribution's RECORD lists."""
    base = Path(str(dist.locate_file("")))
    return real_paths(base / entry for entry in dist.files or [])


def uninstall(dist: metadata.Distribution, venv: Path, report: SlimReport,
              keep: AbstractSet[Path] = frozenset()) -> None:
    """Remove every file the distribution's RECORD lists, then its metadata directory.

    Files in ``keep``, real paths as :func:`real_paths` gives them, stay (a namespace
    package's ``__init__.py`` that another package, or an import of its parent, still needs;
    a file that a kept distribution lists too).
    """
    root = venv.resolve()
    base = Path(str(dist.locate_file(""))).resolve()
    dirs: set[Path] = set()
    for path in record_files(dist):
        if path in keep or not path.is_relative_to(root):
            continue
        # every directory between the file and site-packages: a package whose files went
        # (some earlier, stripped as sources) must not stay behind as an empty namespace
        for parent in path.parents:
            if parent == base or not parent.is_relative_to(base):
                break
            dirs.add(parent)
        _remove(path, root, report)
    info = getattr(dist, "_path", None)  # the .dist-info directory (files RECORD omits)
    if isinstance(info, Path) and info.name.endswith(".dist-info"):
        _remove(info, venv, report)
    for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        if not directory.is_dir() or directory == root:
            continue
        left = list(directory.iterdir())
        if [p.name for p in left] == ["__pycache__"]:  # byte code RECORD did not list
            _remove(left[0], venv, report)
            left = []
        if not left:
            directory.rmdir()


def drop_bytecode(site_packages: Path, venv: Path, packages: Iterable[str],
                  report: SlimReport) -> None:
    """Remove the byte code (``__pycache__``) of every package directory not in ``packages``.

    ``packages`` are the directories, relative to ``site_packages`` (``.`` for top-level
    modules), that a role loads modules from. A module elsewhere that the role imports after
    all is compiled from its source as it is imported, as in the official Python images,
    which ship no byte code at all.
    """
    keep = set(packages)
    for cache in sorted(site_packages.rglob("__pycache__")):
        if cache.is_dir() and cache.parent.relative_to(site_packages).as_posix() not in keep:
            _remove(cache, venv, report)


def slim(venv: Path, site_packages: Path) -> SlimReport:
    """Strip ``venv`` (whose packages live in ``site_packages``); return what was removed."""
    report = SlimReport()
    dists = list(metadata.distributions(path=[str(site_packages)]))
    keep = needed_tools(dists)
    for dist in dists:
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name in TOOLS and name not in keep:
            uninstall(dist, venv, report)
    if "setuptools" not in keep:
        for leftover in ("_distutils_hack", "pkg_resources", "distutils-precedence.pth"):
            _remove(site_packages / leftover, venv, report)
    for path in sorted(site_packages.rglob("*"), key=lambda p: len(p.parts)):
        if not (path.exists() or path.is_symlink()):
            continue  # inside a directory removed already
        relative = path.relative_to(site_packages)
        if relative.parts[0].endswith(".dist-info"):
            continue  # metadata and licenses stay
        if path.is_dir() and not path.is_symlink():
            if (path.name in TEST_DIRS and len(relative.parts) > 1) or path.name == "include":
                _remove(path, venv, report)
        elif path.name.endswith(OTHER_OPT_LEVELS) or path.suffix in SOURCE_SUFFIXES:
            _remove(path, venv, report)
    _remove(venv / "include", venv, report)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -B -m image_builder.slim [VENV]`` (default: the running environment)."""
    parser = argparse.ArgumentParser(prog="python -m image_builder.slim", description=__doc__)
    parser.add_argument("venv", nargs="?", default=sys.prefix, type=Path)
    args = parser.parse_args(argv)
    venv: Path = args.venv
    site_packages = Path(sysconfig.get_paths(vars={"base": str(venv),
                                                   "platbase": str(venv)})["purelib"])
    report = slim(venv, site_packages)
    print(f"image_builder.slim: removed {len(report.removed)} paths, "
          f"{report.bytes_freed / 2**20:.1f} MiB from {venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
