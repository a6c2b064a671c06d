"""One policy for a repository's requirements against FLOps' runtime pins (pure).

Every target applies it (images, project environments, ``flops train-local``):

* a user requirement that excludes the version FLOps' runtime pins is **dropped**, with a note
  that names the user's file and line, says the pin is FLOps' own, and gives the fix;
* ``mlflow`` is served by the runtime's ``mlflow-skinny`` (dropped, with a note);
* a requirement that excludes the exact version one of FLOps' optional extras pins (the CPU
  build ``torch==2.13.0`` of the ``torch`` extra) is **replaced** by that pin, with a note
  (the runtime does not carry the package, so dropping it would leave it out);
* every other requirement is kept.

Every conflict gets its own note, so all of them are reported at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REPLACED = {"mlflow": "mlflow-skinny"}
"""Requirements served by a lighter distribution of the runtime (same version, client only)."""


@dataclasses.dataclass(frozen=True)
class PolicyResult:
    """A repository's requirement lines after the policy.

    Attributes
    ----------
    requirements
        The kept requirement lines (comments stripped).
    options
        Option lines (``-r``, ``--index-url``, ...), in order; the target decides about them.
    invalid
        Lines that are neither options nor valid requirements.
    notes
        One message per dropped requirement.
    """

    requirements: tuple[str, ...]
    options: tuple[str, ...]
    invalid: tuple[str, ...]
    notes: tuple[str, ...]


def conflict_note(*, source: str, line: str, name: str, pinned: str) -> str:
    """The message for a user requirement ``line`` that excludes FLOps' pin ``name==pinned``."""
    return (f"{source}: {line!r} conflicts with FLOps' pin {name}=={pinned} (a version the "
            f"FLOps runtime depends on and is tested with); it was dropped and {name} {pinned} "
            f"is used. To fix: remove the pin from {source} or allow {pinned} "
            f"(e.g. '{name}>={pinned}')")


def apply_pin_policy(
    lines: Iterable[str],
    *,
    pins: Mapping[str, str],
    source: str,
    extra_pins: Mapping[str, str] | None = None,
) -> PolicyResult:
    """Apply the policy to a user's requirement ``lines``.

    Parameters
    ----------
    lines
        Lines of the user's requirements (comments and blank lines allowed).
    pins
        FLOps' runtime pins: canonical name -> version.
    source
        The user's file as the user knows it (``requirements.txt``), for messages.
    extra_pins
        Exact pins of FLOps' optional extras (canonical name -> version).
    """
    kept: list[str] = []
    options: list[str] = []
    invalid: list[str] = []
    notes: list[str] = []
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            invalid.append(line)
            continue
        name = canonicalize_name(req.name)
        replacement = REPLACED.get(name)
        if replacement is not None and replacement in pins:
            notes.append(f"{source}: {line!r} is served by the FLOps runtime's "
                         f"{replacement}=={pins[replacement]} (client only); it was dropped")
            continue
        pinned = pins.get(name)
        if pinned is not None and req.specifier and not req.specifier.contains(
                pinned, prereleases=True):
            notes.append(conflict_note(source=source, line=line, name=name, pinned=pinned))
            continue
        extra = (extra_pins or {}).get(name)
        if extra is not None and req.specifier and not req.specifier.contains(
                extra, prereleases=True):
            notes.append(f"{source}: {line!r} conflicts with FLOps' pin {name}=={extra} (the "
                         f"build FLOps supports); it was replaced by {name}=={extra}. To fix: "
                         f"require {name}=={extra} in {source}")
            kept.append(f"{name}=={extra}")
            continue
        kept.append(line)
    return PolicyResult(tuple(kept), tuple(options), tuple(invalid), tuple(notes))


def parse_pins(lines: Iterable[str]) -> dict[str, str]:
    """Read ``name==version`` lines (a constraints file) into canonical name -> version."""
    pins: dict[str, str] = {}
    for line in lines:
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and name and version:
            pins[canonicalize_name(name.split("[", 1)[0].strip())] = version.strip()
    return pins
