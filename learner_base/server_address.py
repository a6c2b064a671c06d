"""Name resolution of the aggregator's address, so a learner names a DNS failure as such."""

from __future__ import annotations

import socket


def split_address(address: str) -> tuple[str, int | None]:
    """Split ``host:port`` (``[v6]:port`` too) into host and port (None when absent)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    return host, int(port)


def resolution_error(address: str) -> str | None:
    """Return why ``address``'s host does not resolve, or None when it resolves."""
    host, port = split_address(address)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror or exc}"
    except (OSError, UnicodeError) as exc:
        return f"cannot resolve {host}: {exc}"
    return None
