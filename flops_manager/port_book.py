"""Stable loopback ports: remember the port each named listener got, reuse it when free.

Links users save (the MLflow UI, the API, an inference server) keep working across ``flops up``
and manager restarts, because the same name gets the same port as long as nothing else took it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path

from flops_manager.local_processes import free_port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now (as servers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortBook:
    """Ports by name, kept in a JSON file (``{name: port}``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, int]:
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                return {str(k): int(v) for k, v in loaded.items() if isinstance(v, int)}
        return {}

    def port(self, name: str, host: str = "127.0.0.1", *, wanted: int = 0) -> int:
        """Return ``wanted`` if given, else ``name``'s remembered port if free, else a new one.

        The answer is remembered for ``name``.
        """
        with self._lock:
            book = self._read()
            chosen = wanted or book.get(name, 0)
            if not chosen or (not wanted and not port_is_free(chosen, host)):
                chosen = free_port(host)
            if book.get(name) != chosen:
                book[name] = chosen
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(book, indent=1, sort_keys=True),
                                     encoding="utf-8")
            return chosen
