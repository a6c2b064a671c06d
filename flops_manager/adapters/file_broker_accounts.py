"""BrokerAccounts through a policy file that the amqtt fallback broker enforces.

The embedded stack's amqtt broker loads :mod:`flops_manager.adapters.amqtt_policy`'s plugins,
which read the policy file this adapter writes. Every change is a read-modify-write under an
exclusive ``flock`` and lands with an atomic rename, so the broker never reads half a file and
two writers never lose each other's logins. The broker re-reads the file on the next connect or
publish: a login works as soon as :meth:`add` returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from flops_manager.adapters.amqtt_policy import empty_policy, login_entry
from flops_manager.ports.broker_accounts import BrokerAccounts
from flops_manager.ports.errors import TemporaryError


def write_policy(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the policy file at ``path`` (created if missing), atomically.

    Raises
    ------
    TemporaryError
        If the file cannot be read or written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.with_name(path.name + ".lock")):
            policy = json.loads(path.read_text(encoding="utf-8")) if path.exists() else \
                empty_policy()
            change(policy)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(policy, handle)
            os.replace(temporary, path)
    except (OSError, ValueError) as exc:
        raise TemporaryError(f"broker policy file {path}: {exc}") from exc


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class PolicyFileBrokerAccounts(BrokerAccounts):
    """Logins in the policy file of an amqtt broker running FLOps' plugins."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, username: str, password: str, *, role: str, topics: Sequence[str]) -> None:
        """Add (or replace) ``username``, allowed to publish only on ``topics``."""
        entry = login_entry(password, salt=os.urandom(12), publish=list(topics))
        entry["role"] = role
        write_policy(self.path, lambda policy: policy["logins"].__setitem__(username, entry))

    def remove(self, usernames: Sequence[str]) -> None:
        """Remove ``usernames``: they can neither connect nor publish from now on."""
        def drop(policy: dict[str, Any]) -> None:
            for name in usernames:
                policy["logins"].pop(name, None)

        write_policy(self.path, drop)
