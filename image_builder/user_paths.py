"""Name the user's files, not the build cache's checkout, in messages.

A repository is checked out under ``<cache>/checkouts/<commit>``; the user knows its files as
``model_manager.py`` or ``requirements.txt`` in the repository.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path

from flops_contracts.errors import FlopsError


def user_facing(message: str, checkout_dir: Path) -> str:
    """Replace paths inside ``checkout_dir`` by paths relative to the repository (pure)."""
    root = str(checkout_dir).rstrip("/")
    return message.replace(root + "/", "").replace(root, "the repository")


@contextlib.contextmanager
def repository_paths(checkout_dir: Path) -> Iterator[None]:
    """Re-raise a :class:`FlopsError` from the block with :func:`user_facing` messages."""
    try:
        yield
    except FlopsError as exc:
        message = user_facing(exc.message, checkout_dir)
        if message == exc.message:
            raise
        renamed = copy.copy(exc)
        renamed.message = message
        renamed.args = (message,)
        raise renamed from exc
