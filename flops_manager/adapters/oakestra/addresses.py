"""Pure allocation of Oakestra round-robin service IPs (``addresses.rr_ip``).

Oakestra puts service (round-robin) and instance IPs in ``10.30.0.0/16``; an SLA may request a
fixed round-robin IP, which must lie in that subnet and must not collide with another address.
The network plugin hands out addresses it allocates itself sequentially from the bottom of that
subnet, so this allocator only uses the upper half, ``10.30.128.1`` to ``10.30.255.254``, and
never a last octet of 0 or 255 (32,512 addresses).

The subnet is configurable (``FLOPS_OAKESTRA_RR_SUBNET``, see :class:`AddressPool`): the pool is
always the upper half of the subnet's ``/24`` blocks without last octets 0 and 255. The default
pool is the one above; the module-level functions use it.

The first candidate of a service is derived from SHA-256 of ``"<app>/<service>"`` (the same in
every process, unlike Python's ``hash()``); taken candidates are skipped by linear probing. The
result is therefore deterministic for a given project, service and set of taken addresses, never
collides with ``taken`` and never fails while a free address remains.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

from flops_manager.ports.errors import PermanentError

DEFAULT_SUBNET = "10.30.0.0/16"
SERVICE_SUBNET = ipaddress.IPv4Network(DEFAULT_SUBNET)
FIRST_THIRD_OCTET = 128
HOSTS_PER_BLOCK = 254  # last octets 1..254
MIN_PREFIX = 8
MAX_PREFIX = 23  # at least two /24 blocks, so that the upper half is not empty


class AddressPoolExhaustedError(PermanentError):
    """Every round-robin address of the pool is taken."""


def parse_subnet(value: str) -> ipaddress.IPv4Network:
    """Return ``value`` as an IPv4 network usable as round-robin subnet.

    Raises
    ------
    ValueError
        If ``value`` is not an IPv4 network (host bits clear) with a prefix of 8 to 23 bits.
    """
    network = ipaddress.IPv4Network(value.strip(), strict=True)
    if not MIN_PREFIX <= network.prefixlen <= MAX_PREFIX:
        raise ValueError(
            f"round-robin subnet {value!r} needs a prefix of /{MIN_PREFIX} to /{MAX_PREFIX}"
        )
    return network


class AddressPool:
    """The round-robin addresses this backend hands out in ``subnet``.

    The pool is the upper half of the subnet's ``/24`` blocks, last octets 1 to 254 (for
    ``10.30.0.0/16``: ``10.30.128.1`` to ``10.30.255.254``).
    """

    def __init__(self, subnet: str = DEFAULT_SUBNET) -> None:
        self.subnet = parse_subnet(subnet)
        blocks = 1 << (24 - self.subnet.prefixlen)
        self.first_block = blocks // 2
        self.size = (blocks - self.first_block) * HOSTS_PER_BLOCK
        self._base = int(self.subnet.network_address)

    def __repr__(self) -> str:
        return f"AddressPool({str(self.subnet)!r})"

    def address(self, index: int) -> str:
        """Return the ``index``-th address of the pool (``0 <= index < size``)."""
        if not 0 <= index < self.size:
            raise ValueError(f"pool index {index} out of range")
        block = self.first_block + index // HOSTS_PER_BLOCK
        host = 1 + index % HOSTS_PER_BLOCK
        return str(ipaddress.IPv4Address(self._base + block * 256 + host))

    def contains(self, address: str) -> bool:
        """Return whether ``address`` is one this pool may hand out."""
        try:
            ip = ipaddress.IPv4Address(address.strip())
        except ValueError:
            return False
        if ip not in self.subnet:
            return False
        offset = int(ip) - self._base
        return offset // 256 >= self.first_block and 0 < offset % 256 < 255

    def first_candidate(self, *, app: str, service: str) -> int:
        """Return the pool index a service tries first."""
        digest = hashlib.sha256(f"{app}/{service}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.size

    def _first_free(self, *, app: str, service: str, used: set[str]) -> str:
        start = self.first_candidate(app=app, service=service)
        for step in range(min(self.size, len(used) + 1)):
            candidate = self.address((start + step) % self.size)
            if candidate not in used:
                return candidate
        raise AddressPoolExhaustedError(
            f"no free round-robin address left in the pool of {self.subnet} for {service}"
        )

    def allocate(self, *, app: str, service: str, taken: Iterable[str | None]) -> str:
        """Return a free round-robin address for ``service`` of application ``app``.

        Parameters
        ----------
        app
            Key of the application (the project id).
        service
            FLOps name of the service.
        taken
            Addresses already in use (the application's services, failed attempts...);
            entries that are not IPv4 addresses are ignored.

        Raises
        ------
        AddressPoolExhaustedError
            If every address of the pool is taken.
        """
        return self._first_free(app=app, service=service, used=normalize(taken))

    def allocate_many(
        self, *, app: str, services: Iterable[str], taken: Iterable[str | None] = ()
    ) -> dict[str, str]:
        """Allocate addresses for several services at once, in sorted name order.

        The result does not depend on the order of ``services``; no two services get the same
        address and none gets an address of ``taken``.
        """
        used = normalize(taken)
        result: dict[str, str] = {}
        for service in sorted(set(services)):
            address = self._first_free(app=app, service=service, used=used)
            used.add(address)
            result[service] = address
        return result


def normalize(addresses: Iterable[str | None]) -> set[str]:
    """Return the valid IPv4 addresses of ``addresses`` in canonical text form."""
    result: set[str] = set()
    for raw in addresses:
        if not isinstance(raw, str):
            continue
        try:
            result.add(str(ipaddress.IPv4Address(raw.strip())))
        except ValueError:
            continue
    return result
