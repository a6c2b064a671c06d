"""Prepare an image build context: Containerfile, dependency files, FLOps wheel, payload.

::

    <context>/
      Containerfile
      deps/requirements.txt  deps/constraints.txt
      wheel/flops-<version>-py3-none-any.whl
      payload/               the user's repository (without .git) or the model directory

The Containerfile lives beside, never inside, the payload, so no user file (a ``Dockerfile``,
a ``requirements.txt``, a ``main.py``) can replace or shadow a FLOps file.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from image_builder import commands
from image_builder.cache import CacheLayout, locked
from image_builder.git_checkout import MARKER as CHECKOUT_MARKER
from image_builder.outcome import BuildError
from image_builder.runtime_layer import copy_runtime, runtime_version

logger = logging.getLogger(__name__)

SOURCE_DATE_EPOCH = "315532800"
"""1980-01-01: makes the wheel's bytes depend on its content only (stable layer cache)."""
_SKIPPED_TOP = frozenset({".git", CHECKOUT_MARKER})


def copy_payload(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` without ``.git`` and the checkout marker.

    Symlinks are copied as symlinks (checkouts are verified not to escape the tree).
    """
    def ignore(directory: str, names: list[str]) -> set[str]:
        return set(names) & _SKIPPED_TOP if Path(directory) == source else set()

    shutil.copytree(source, target, symlinks=True, ignore=ignore)


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write ``lines`` (one per line) to ``path``, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    path.write_text(text + "\n" if text else "", encoding="utf-8")


def runtime_wheel(*, cache: CacheLayout, source: Path, python: str, timeout: float) -> Path:
    """Return the FLOps runtime wheel for ``source``, building it once per runtime version.

    The wheel is built from a snapshot of the runtime packages (the source tree is never
    written to) with ``SOURCE_DATE_EPOCH`` fixed, and kept in ``<cache>/wheels/<version>/``.

    Raises
    ------
    BuildError
        If building the wheel fails.
    """
    version = runtime_version(source)
    target = cache.root / "wheels" / version
    found = sorted(target.glob("*.whl"))
    if found:
        return found[0]
    with locked(cache.lock_file(f"wheel-{version}")):
        found = sorted(target.glob("*.whl"))
        if found:
            return found[0]
        with tempfile.TemporaryDirectory(prefix="flops-wheel-") as tmp:
            snapshot = Path(tmp) / "src"
            copy_runtime(source, snapshot)
            out = Path(tmp) / "out"
            env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
            base = [python, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
            result = commands.run([*base, "--no-build-isolation", str(snapshot)],
                                  timeout=timeout, env=env, check=False, what="pip wheel")
            if result.returncode != 0:
                logger.info("wheel without build isolation failed, retrying with it")
                commands.run([*base, str(snapshot)], timeout=timeout, env=env,
                             what="pip wheel")
            wheels = sorted(out.glob("*.whl"))
            if not wheels:
                raise BuildError("pip wheel produced no wheel of the FLOps runtime")
            target.mkdir(parents=True, exist_ok=True)
            final = target / wheels[0].name
            tmp_final = target / (wheels[0].name + ".tmp")
            shutil.copy2(wheels[0], tmp_final)
            os.replace(tmp_final, final)
            return final


def check_wheel_has(wheel: Path, modules: Iterable[str]) -> None:
    """Raise unless the wheel contains each module as a package (``<name>/__init__.py``).

    Raises
    ------
    BuildError
        Naming the missing package and how to include it.
    """
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for module in modules:
        top = module.split(".", 1)[0]
        if f"{top}/__init__.py" not in names:
            raise BuildError(
                f"the FLOps runtime wheel {wheel.name} has no package {top!r}; add "
                f"'{top}*' to [tool.setuptools.packages.find] include in pyproject.toml"
            )
