"""Layout of the builder's cache directory, completion markers and inter-process locks.

::

    <cache_dir>/
      checkouts/<commit>/            verified checkout of one commit (+ .flops-checkout.json)
      runtime/<runtime key>/         shared FLOps runtime layer: src/ (copy), venv/, layer.json
      envs/<cache key>/              one project environment: venv/, build.json
      locks/<name>.lock              flock files, one per thing being built

An entry counts only once its marker file exists; markers are written last, atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class CacheLayout:
    """Paths inside one cache directory.

    Parameters
    ----------
    root
        The cache directory (created on demand).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def checkout(self, commit: str) -> Path:
        """Directory of the checkout of ``commit``."""
        return self.root / "checkouts" / commit

    def runtime(self, key: str) -> Path:
        """Directory of the runtime layer with ``key``."""
        return self.root / "runtime" / key

    def env(self, key: str) -> Path:
        """Directory of the project environment with cache ``key``."""
        return self.root / "envs" / key

    def lock_file(self, name: str) -> Path:
        """Lock file guarding the construction of ``name``."""
        return self.root / "locks" / f"{name}.lock"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (blocks until other builders release it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_marker(path: Path) -> dict[str, Any] | None:
    """Return the JSON object of a completion marker, or ``None`` if absent or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_marker(path: Path, data: dict[str, Any]) -> None:
    """Write a completion marker atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def remove_tree(path: Path) -> None:
    """Delete ``path`` (a stale, unfinished entry) if it exists."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
