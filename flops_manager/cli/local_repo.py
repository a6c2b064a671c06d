"""``--repo PATH``: turn a local directory into something the manager can clone.

A Git work tree is submitted as it is (``file://`` URL; its commits, ``--ref`` works). Any
other directory (plain files, or a sub-directory of a bigger Git repository such as
``examples/digits_sklearn``) is snapshotted: its files (minus ``.gitignore``d ones and caches)
become a commit of a bare repository under the data directory, one per source directory, and
that commit is submitted. An unchanged directory gives the same commit, so the build cache hits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
from pathlib import Path

from flops_contracts.errors import FlopsError

SNAPSHOT_DIR = "local-repos"
"""Where snapshots live, under the stack's data directory."""
IGNORED = ("__pycache__/", "*.pyc", ".venv/", ".ipynb_checkpoints/", ".pytest_cache/")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
GIT_TIMEOUT_S = 120.0


@dataclasses.dataclass(frozen=True)
class Repository:
    """What ``repository`` of a create request says, and how it was found."""

    url: str
    ref: str | None = None
    snapshot_of: Path | None = None
    """The local directory a snapshot was taken of (``None``: submitted as given)."""


def is_remote(repo: str) -> bool:
    """Whether ``repo`` is a URL (``scheme://``) or ``user@host:path`` rather than a path."""
    return "://" in repo or bool(_SCP_LIKE.match(repo))


def _git(*args: str, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], check=True, capture_output=True, text=True,  # noqa: S603, S607
                              timeout=GIT_TIMEOUT_S, env=env)
    except subprocess.CalledProcessError as exc:
        raise FlopsError(f"git {args[0]} failed: {exc.stderr.strip()}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FlopsError(f"git {args[0]} failed: {exc}") from None
    return done.stdout.strip()


def snapshot(source: Path, snapshots: Path) -> tuple[Path, str]:
    """Commit the files of ``source`` to its bare snapshot repository.

    Returns the repository and the commit (the previous one if nothing changed).
    """
    key = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    bare = snapshots / f"{source.name}-{key}.git"
    if not (bare / "HEAD").exists():
        _git("init", "-q", "--bare", "--initial-branch=main", str(bare))
        (bare / "info").mkdir(exist_ok=True)
        (bare / "info" / "exclude").write_text("\n".join(IGNORED) + "\n", encoding="utf-8")
    env = {**os.environ, "GIT_DIR": str(bare), "GIT_WORK_TREE": str(source),
           "GIT_AUTHOR_NAME": "FLOps", "GIT_AUTHOR_EMAIL": "flops@localhost",
           "GIT_COMMITTER_NAME": "FLOps", "GIT_COMMITTER_EMAIL": "flops@localhost"}
    _git("add", "-A", ".", env=env)
    tree = _git("write-tree", env=env)
    head = _git("rev-parse", "--verify", "-q", "refs/heads/main^{commit}", env=env) \
        if (bare / "refs" / "heads" / "main").exists() else ""
    if head and _git("rev-parse", f"{head}^{{tree}}", env=env) == tree:
        return bare, head
    parent = ["-p", head] if head else []
    commit = _git("commit-tree", tree, *parent, "-m", f"snapshot of {source}", env=env)
    _git("update-ref", "refs/heads/main", commit, env=env)
    return bare, commit


def resolve(repo: str, *, ref: str | None, snapshots: Path) -> Repository:
    """Return the repository to submit for ``--repo`` (a URL, or a local directory).

    Raises
    ------
    FlopsError
        If a local path does not exist or is not a directory, or ``--ref`` is given for a
        directory that is not a Git repository, naming the path and what to do.
    """
    if is_remote(repo):
        return Repository(repo, ref)
    path = Path(repo).expanduser().resolve()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise FlopsError(f"repository path {repo!r} ({path}) {what}: pass the directory that "
                         "holds model_manager.py, or a Git URL (https://, ssh://, git@host:path)")
    if (path / ".git").exists():
        return Repository(path.as_uri(), ref)
    if ref:
        raise FlopsError(f"--ref {ref} needs a Git repository, but {path} is not one: drop "
                         "--ref to submit the directory's files as they are, or `git init` it")
    bare, commit = snapshot(path, snapshots)
    return Repository(bare.as_uri(), commit, snapshot_of=path)
