"""Target platforms and the build host's emulation support (binfmt_misc).

Pure functions normalise ``os/arch[/variant]`` strings and decide which platforms need
emulation; :func:`read_binfmt_handlers` is the only I/O (it lists ``/proc/sys/fs/binfmt_misc``).
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Iterable, Mapping
from pathlib import Path

from image_builder.outcome import BuildError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

_MACHINE_TO_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
    "riscv64": "riscv64", "i386": "386", "i686": "386",
}
QEMU_NAMES = {
    "amd64": "x86_64", "arm64": "aarch64", "arm": "arm", "ppc64le": "ppc64le",
    "s390x": "s390x", "riscv64": "riscv64", "386": "i386",
}
"""Architecture -> the qemu binfmt handler name (``qemu-<name>``)."""
_NATIVE_EXTRA = {"amd64": {"386"}, "arm64": {"arm"}}


def normalize_platform(text: str) -> str:
    """Return ``os/arch[/variant]`` in canonical form (``linux/arm64/v8`` -> ``linux/arm64``).

    Raises
    ------
    BuildError
        If ``text`` is not ``os/arch[/variant]`` with a known architecture.
    """
    parts = text.strip().lower().split("/")
    if len(parts) == 1:
        parts = ["linux", *parts]
    if len(parts) not in (2, 3) or not all(parts):
        raise BuildError(f"platform {text!r} is not os/arch[/variant], e.g. linux/arm64")
    os_name, arch = parts[0], _MACHINE_TO_ARCH.get(parts[1], parts[1])
    if arch not in QEMU_NAMES:
        raise BuildError(f"platform {text!r}: unknown architecture {parts[1]!r}; "
                         f"known: {', '.join(sorted(QEMU_NAMES))}")
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "arm64" and variant == "v8":
        variant = ""
    return "/".join(p for p in (os_name, arch, variant) if p)


def host_platform(machine: str | None = None) -> str:
    """Return the build host's platform, e.g. ``linux/amd64``."""
    name = (machine or _platform.machine()).lower()
    return f"linux/{_MACHINE_TO_ARCH.get(name, name)}"


def requested_platforms(requested: Iterable[str], host: str) -> tuple[str, ...]:
    """Return the normalised, de-duplicated platforms (``host`` when none is requested)."""
    result: list[str] = []
    for text in requested or [host]:
        value = normalize_platform(text)
        if value not in result:
            result.append(value)
    return tuple(result) or (host,)


def needs_emulation(platforms: Iterable[str], host: str) -> list[str]:
    """Return the platforms the host cannot run natively."""
    host_arch = host.split("/")[1]
    native = {host_arch} | _NATIVE_EXTRA.get(host_arch, set())
    return [p for p in platforms if p.split("/")[1] not in native]


def missing_emulation(platforms: Iterable[str], host: str,
                      handlers: Mapping[str, bool]) -> list[str]:
    """Return the platforms that need emulation the host lacks.

    Parameters
    ----------
    handlers
        binfmt_misc handler name -> enabled (from :func:`read_binfmt_handlers`).
    """
    missing = []
    for plat in needs_emulation(platforms, host):
        qemu = QEMU_NAMES[plat.split("/")[1]]
        if not any(enabled and name in (f"qemu-{qemu}", qemu, f"qemu-{qemu}-static")
                   for name, enabled in handlers.items()):
            missing.append(plat)
    return missing


def emulation_error(missing: Iterable[str], host: str) -> BuildError:
    """Return the fail-fast error for platforms the host cannot build."""
    names = ", ".join(missing)
    return BuildError(
        f"cannot build for {names} on this {host} build host: no enabled binfmt_misc "
        "emulation handler (qemu-user-static) is registered for it. Install "
        "qemu-user-static and register the handler (scripts/setup_containers.sh with "
        "FLOPS_WITH_EMULATION=1), build on a native host, or drop the platform."
    )


def read_binfmt_handlers(root: Path = BINFMT_DIR) -> dict[str, bool]:
    """Return the registered binfmt_misc handlers (name -> enabled); ``{}`` if unavailable."""
    handlers: dict[str, bool] = {}
    try:
        entries = list(root.iterdir())
    except OSError:
        return handlers
    for entry in entries:
        if entry.name in ("register", "status"):
            continue
        try:
            first = entry.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        except OSError:
            continue
        handlers[entry.name] = first == ["enabled"]
    return handlers
