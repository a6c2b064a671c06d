"""``--repo PATH``: Git work trees as they are, other directories as snapshots, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flops_contracts.errors import FlopsError
from flops_manager.cli.local_repo import is_remote, resolve


def _clone_files(url: str, ref: str, into: Path) -> dict[str, str]:
    subprocess.run(["git", "clone", "-q", url, str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "-q", ref], check=True)
    return {p.name: p.read_text() for p in into.iterdir() if p.is_file()}


def test_urls_are_submitted_as_given(tmp_path: Path) -> None:
    for url in ("https://h/r.git", "ssh://git@h/r", "git@h:r.git", "file:///srv/r"):
        assert is_remote(url)
        assert resolve(url, ref="v1", snapshots=tmp_path).url == url
    assert not is_remote("examples/digits_sklearn")


def test_missing_path_and_file_are_refused_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FlopsError, match=r"'nowhere/repo' .*does not exist.*model_manager.py"):
        resolve("nowhere/repo", ref=None, snapshots=tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(FlopsError, match="is not a directory"):
        resolve(str(tmp_path / "f.txt"), ref=None, snapshots=tmp_path)


def test_a_git_work_tree_is_submitted_with_its_ref(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "g")], check=True)
    found = resolve(str(tmp_path / "g"), ref="main", snapshots=tmp_path / "s")
    assert (found.url, found.ref, found.snapshot_of) == ((tmp_path / "g").as_uri(), "main", None)


def test_a_plain_directory_becomes_a_snapshot_commit(tmp_path: Path) -> None:
    source = tmp_path / "plain"
    (source / "__pycache__").mkdir(parents=True)
    (source / "model_manager.py").write_text("class ModelManager: ...\n")
    (source / "__pycache__" / "x.pyc").write_bytes(b"junk")
    snaps = tmp_path / "snaps"
    first = resolve(str(source), ref=None, snapshots=snaps)
    assert first.snapshot_of == source and first.url.startswith(snaps.as_uri())
    assert resolve(str(source), ref=None, snapshots=snaps) == first  # unchanged: same commit
    assert _clone_files(first.url, str(first.ref), tmp_path / "c1") == {
        "model_manager.py": "class ModelManager: ...\n"}
    (source / "requirements.txt").write_text("numpy\n")
    second = resolve(str(source), ref=None, snapshots=snaps)
    assert second.url == first.url and second.ref != first.ref
    assert "requirements.txt" in _clone_files(second.url, str(second.ref), tmp_path / "c2")
    with pytest.raises(FlopsError, match="--ref v1 needs a Git repository"):
        resolve(str(source), ref="v1", snapshots=snaps)
