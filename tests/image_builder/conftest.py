"""Fixtures: git repositories made in temp dirs, one builder cache shared by the session."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from image_builder import BuilderSettings
from tests.fixtures.events import Recorder, recorder  # noqa: F401 - shared fixture

MAIN = Path(__file__).resolve().parents[2]
EXAMPLE = MAIN / "examples" / "digits_sklearn"
GIT_ID = ["-c", "user.name=FLOps Test", "-c", "user.email=test@flops.invalid"]


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


def commit_files(repo: Path, files: Mapping[str, str | bytes], message: str = "update") -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def example_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in EXAMPLE.iterdir()
            if p.suffix in (".py", ".txt", ".md")}


def new_repo(path: Path, files: Mapping[str, str | bytes] | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit_files(path, example_files() if files is None else files, "initial")
    return path


@pytest.fixture(scope="session")
def session_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("image-builder")
    return {"cache": root / "cache", "uv_cache": root / "uv-cache", "root": root}


@pytest.fixture(scope="session")
def example_repo(session_dirs: dict[str, Path]) -> Path:
    """The digits example committed to a git repository (shared; tests must not change it)."""
    return new_repo(session_dirs["root"] / "example-repo")


@pytest.fixture()
def make_settings(session_dirs: dict[str, Path],
                  tmp_path: Path) -> Callable[..., BuilderSettings]:
    def make(url: str, **overrides: Any) -> BuilderSettings:
        values: dict[str, Any] = {
            "repository_url": url,
            "project_id": "proj-1",
            "cache_dir": session_dirs["cache"],
            "work_dir": tmp_path / "work",
            "allow_local": True,
            "uv_cache_dir": session_dirs["uv_cache"],
            "git_timeout_s": 60,
            "install_timeout_s": 600,
            "smoke_timeout_s": 120,
        }
        values.update(overrides)
        return BuilderSettings(**values)

    return make




@pytest.fixture()
def copy_repo(tmp_path: Path, example_repo: Path) -> Callable[[], Path]:
    """A private clone of the example repository that a test may change."""
    def make() -> Path:
        target = tmp_path / "repo"
        shutil.copytree(example_repo, target)
        return target

    return make
