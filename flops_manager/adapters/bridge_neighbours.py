"""Keep containers on a Podman bridge network reaching the host when other containers leave.

Netavark (Podman 4.x, e.g. Debian 12's) leaves a bridge's MAC address to the kernel, which gives
the bridge the lowest MAC among its ports. When the container owning that port stops, the
bridge's MAC changes, and every other container on the network still holds the old MAC for
the gateway in its neighbour (ARP) cache. Frames to the old MAC are no longer delivered to the
host, so their connections to everything reached through the gateway (the broker, MLflow, the
manager, all published on the host as ``host.containers.internal``) go dark. With the kernel's
default neighbour timers that lasted more than 150 s here (a learner exiting left its
aggregator stalled in model logging and dropped by the broker).

Three per-interface sysctls of the container's first interface (the one with the default
route) bound the outage to about 2 s: the entry is re-checked after 2 s without confirmation,
probed after 1 s, and re-resolved by broadcast at once instead of by unicast probes to a MAC
that is gone. Docker sets a fixed MAC on its bridges and needs none of this.
"""

from __future__ import annotations

from typing import Any

GATEWAY_INTERFACE = "eth0"
"""The container's interface of its first network, which carries the default route."""

NEIGHBOUR_SYSCTLS: dict[str, str] = {
    f"net.ipv4.neigh.{GATEWAY_INTERFACE}.base_reachable_time_ms": "2000",
    f"net.ipv4.neigh.{GATEWAY_INTERFACE}.delay_first_probe_time": "1",
    f"net.ipv4.neigh.{GATEWAY_INTERFACE}.ucast_solicit": "0",
}
"""Sysctls that make a stale gateway MAC be replaced within about 2 s (see module docstring)."""


def is_podman(client: Any) -> bool:
    """Whether ``client`` (a ``docker.DockerClient``) talks to Podman's Docker-compatible API."""
    version = client.version()
    names = [str(c.get("Name", "")) for c in version.get("Components", [])]
    return any("podman" in n.lower() for n in names)
