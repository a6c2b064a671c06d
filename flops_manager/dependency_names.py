"""Start-up check: the host names of the manager's dependencies must resolve.

In the compose suite the manager reaches MongoDB and the broker by container name (``mongo``,
``mqtt``). Where the engine cannot resolve container names, the manager
used to start anyway and answer ``/ready`` with "Name or service not known" for ever. It now
waits a bounded time for each name and otherwise stops at once, naming the name, the setting
it came from and the likely fix.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping

from flops_contracts.errors import ConfigError

Resolver = Callable[[str], object]


def host_names(urls: Mapping[str, str | None]) -> dict[str, str]:
    """Return ``{host name: setting}`` for the URLs whose host is a name to resolve.

    IP literals and ``localhost`` need no resolver and are left out; so are unset settings and
    URLs without a host (``memory://``, ``file://``).
    """
    names: dict[str, str] = {}
    for setting, url in urls.items():
        if not url:
            continue
        host = urllib.parse.urlsplit(url).hostname
        if not host or host == "localhost":
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.setdefault(host, setting)
    return names


def wait_for_names(names: Mapping[str, str], *, timeout_s: float = 30.0,
                   resolve: Resolver = socket.gethostbyname,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until every name resolves; raise ``ConfigError`` naming those that do not.

    Each name gets ``timeout_s`` in all (a container may be starting); the error says which
    setting holds the name and what to check.
    """
    deadline = time.monotonic() + timeout_s
    pending = dict(names)
    errors: dict[str, str] = {}
    while pending:
        for name in list(pending):
            try:
                resolve(name)
            except OSError as exc:
                errors[name] = str(exc)
            else:
                pending.pop(name)
                errors.pop(name, None)
        if not pending or time.monotonic() >= deadline:
            break
        sleep(0.5)
    if pending:
        listed = "; ".join(f"{name!r} (from {setting}: {errors.get(name, 'unresolved')})"
                           for name, setting in pending.items())
        raise ConfigError(
            f"cannot resolve {listed} within {timeout_s:.0f} s. If the manager runs in a "
            "container beside these services (the compose suite), the container engine cannot "
            "resolve container names: run `flops preflight` to confirm, and `sudo bash "
            "scripts/setup_containers.sh` (netavark + aardvark-dns for Podman) to fix it; "
            "otherwise correct the setting")
