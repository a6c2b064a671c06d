"""Pure allocation of Oakestra round-robin service IPs (``addresses.rr_ip``).

Oakestra puts service (round-robin) and instance IPs in ``10.30.0.0/16``; an SLA may request a
fixed round-robin IP, which must have the form ``10.30.x.y`` and must not collide with another
address. The network plugin hands out addresses it allocates itself sequentially from the
bottom of that subnet, so this allocator only uses the upper half, ``10.30.128.1`` to
``10.30.255.254``, and never a last octet of 0 or 255 (32,512 addresses).

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

SERVICE_SUBNET = ipaddress.IPv4Network("10.30.0.0/16")
FIRST_THIRD_OCTET = 128
HOSTS_PER_BLOCK = 254  # last octets 1..254
POOL_SIZE = (256 - FIRST_THIRD_OCTET) * HOSTS_PER_BLOCK


class AddressPoolExhaustedError(PermanentError):
    """Every round-robin address of the pool is taken."""


def pool_address(index: int) -> str:
    """Return the ``index``-th address of the pool (``0 <= index < POOL_SIZE``)."""
    if not 0 <= index < POOL_SIZE:
        raise ValueError(f"pool index {index} out of range")
    third = FIRST_THIRD_OCTET + index // HOSTS_PER_BLOCK
    fourth = 1 + index % HOSTS_PER_BLOCK
    return f"10.30.{third}.{fourth}"


def in_pool(address: str) -> bool:
    """Return whether ``address`` is one this allocator may hand out."""
    try:
        ip = ipaddress.IPv4Address(address.strip())
    except ValueError:
        return False
    octets = ip.packed
    return ip in SERVICE_SUBNET and octets[2] >= FIRST_THIRD_OCTET and 0 < octets[3] < 255


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


def first_candidate(*, app: str, service: str) -> int:
    """Return the pool index a service tries first."""
    digest = hashlib.sha256(f"{app}/{service}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % POOL_SIZE


def _first_free(*, app: str, service: str, used: set[str]) -> str:
    start = first_candidate(app=app, service=service)
    for step in range(POOL_SIZE):
        candidate = pool_address((start + step) % POOL_SIZE)
        if candidate not in used:
            return candidate
    raise AddressPoolExhaustedError(
        f"no free round-robin address left in 10.30.{FIRST_THIRD_OCTET}.0/17 for {service}"
    )


def allocate_address(*, app: str, service: str, taken: Iterable[str | None]) -> str:
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
    return _first_free(app=app, service=service, used=normalize(taken))


def allocate_addresses(
    *, app: str, services: Iterable[str], taken: Iterable[str | None] = ()
) -> dict[str, str]:
    """Allocate addresses for several services at once, in sorted name order.

    The result does not depend on the order of ``services``; no two services get the same
    address and none gets an address of ``taken``.
    """
    used = normalize(taken)
    result: dict[str, str] = {}
    for service in sorted(set(services)):
        address = _first_free(app=app, service=service, used=used)
        used.add(address)
        result[service] = address
    return result
