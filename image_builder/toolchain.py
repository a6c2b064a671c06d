"""Create virtual environments and install into them: uv when available, else venv + pip.

Both backends implement :class:`VenvTool`; :func:`find_tool` picks one.
"""

from __future__ import annotations

import abc
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from image_builder import commands


def venv_python(venv: Path) -> Path:
    """Return the interpreter of ``venv``."""
    return venv / "bin" / "python"


def requirement_args(requirement_files: Sequence[Path], constraints: Path | None) -> list[str]:
    """``-r FILE`` for each requirements file and ``-c FILE`` for the constraints (pip and uv)."""
    args: list[str] = []
    for req in requirement_files:
        args += ["-r", str(req)]
    if constraints is not None:
        args += ["-c", str(constraints)]
    return args


class VenvTool(abc.ABC):
    """Creates virtual environments and installs packages into them.

    Parameters
    ----------
    env
        Environment for the tool's processes (cache directories, certificates, ...).
    """

    name: str = ""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    @abc.abstractmethod
    def create(self, venv: Path, *, python: str, system_site_packages: bool,
               timeout: float) -> None:
        """Create an empty virtual environment at ``venv`` from interpreter ``python``."""

    @abc.abstractmethod
    def install(
        self,
        venv: Path,
        *,
        requirement_files: Sequence[Path] = (),
        packages: Sequence[str] = (),
        constraints: Path | None = None,
        timeout: float,
    ) -> None:
        """Install requirement files and packages into ``venv``.

        Raises
        ------
        BuildError
            If installation fails; ``details["output_tail"]`` has the installer's output.
        """

    @abc.abstractmethod
    def freeze(self, venv: Path, *, timeout: float) -> list[str]:
        """Return the ``name==version`` lines of the packages installed in ``venv``."""


class UvTool(VenvTool):
    """uv backend (``uv venv`` + ``uv pip install``): parallel, cached, hard-linked installs.

    Parameters
    ----------
    uv
        Path of the ``uv`` executable.
    env
        Environment for uv (``UV_CACHE_DIR`` is honoured).
    """

    name = "uv"

    def __init__(self, uv: str, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.uv = uv

    def create(self, venv: Path, *, python: str, system_site_packages: bool,
               timeout: float) -> None:
        """Create ``venv`` with ``uv venv``."""
        argv = [self.uv, "venv", "--quiet", "--no-project", "--python", python]
        if system_site_packages:
            argv.append("--system-site-packages")
        commands.run([*argv, "--", str(venv)], timeout=timeout, env=self.env, what="uv venv")

    def install(
        self,
        venv: Path,
        *,
        requirement_files: Sequence[Path] = (),
        packages: Sequence[str] = (),
        constraints: Path | None = None,
        timeout: float,
    ) -> None:
        """Install with ``uv pip install``."""
        argv = [self.uv, "pip", "install", "--no-progress", "--python", str(venv_python(venv))]
        argv += requirement_args(requirement_files, constraints)
        commands.run([*argv, "--", *packages], timeout=timeout, env=self.env,
                     what="uv pip install")

    def freeze(self, venv: Path, *, timeout: float) -> list[str]:
        """List packages with ``uv pip freeze``."""
        out = commands.run(
            [self.uv, "pip", "freeze", "--python", str(venv_python(venv))],
            timeout=timeout, env=self.env, what="uv pip freeze",
        )
        return out.stdout.splitlines()


class PipTool(VenvTool):
    """Fallback backend: ``python -m venv`` (with pip) + ``pip install``."""

    name = "pip"

    def create(self, venv: Path, *, python: str, system_site_packages: bool,
               timeout: float) -> None:
        """Create ``venv`` with the standard library's ``venv`` module."""
        argv = [python, "-m", "venv"]
        if system_site_packages:
            argv.append("--system-site-packages")
        commands.run([*argv, "--", str(venv)], timeout=timeout, env=self.env,
                     what="python -m venv")

    def install(
        self,
        venv: Path,
        *,
        requirement_files: Sequence[Path] = (),
        packages: Sequence[str] = (),
        constraints: Path | None = None,
        timeout: float,
    ) -> None:
        """Install with ``pip install``."""
        argv = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check",
                "--no-input"]
        argv += requirement_args(requirement_files, constraints)
        commands.run([*argv, "--", *packages], timeout=timeout, env=self.env,
                     what="pip install")

    def freeze(self, venv: Path, *, timeout: float) -> list[str]:
        """List packages with ``pip freeze``."""
        out = commands.run(
            [str(venv_python(venv)), "-m", "pip", "freeze", "--disable-pip-version-check"],
            timeout=timeout, env=self.env, what="pip freeze",
        )
        return out.stdout.splitlines()


def find_uv(explicit: str | None = None) -> str | None:
    """Return the uv to use: ``explicit``, the one next to ``sys.executable``, or on ``PATH``."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("uv")


def find_tool(*, uv: str | None, use_uv: bool, env: Mapping[str, str]) -> VenvTool:
    """Return the uv backend if uv is found and wanted, else the pip backend."""
    found = find_uv(uv) if use_uv else None
    return UvTool(found, env) if found else PipTool(env)
