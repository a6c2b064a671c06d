"""FLOps' pins and their merge with a user's requirements.

The pins are the exact versions of the FLOps runtime's dependency closure as installed beside
the builder (the versions FLOps is tested with): they become ``constraints.txt`` of every image,
so builds are reproducible and need no resolver backtracking. :func:`merge_requirements` is pure:
it applies :mod:`image_builder.pin_policy` (a user requirement that excludes a pinned version is
dropped with a message, ``mlflow`` is served by the runtime's ``mlflow-skinny``), and lines pip
cannot take from a generated file (``-r``, ``-e``, local paths) are reported.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
from collections.abc import Iterable, Mapping

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from image_builder.pin_policy import REPLACED, apply_pin_policy

RUNTIME_DISTRIBUTION = "flops"
MANAGER_ONLY = frozenset({"flask", "flask-smorest", "marshmallow", "pymongo", "nx-27017"})
"""FLOps dependencies the manager needs but images do not."""
_KEPT_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "--trusted-host",
                 "--pre", "--only-binary", "--prefer-binary", "-i ", "-f ")


@dataclasses.dataclass(frozen=True)
class MergedRequirements:
    """The requirements of an image.

    Attributes
    ----------
    requirements
        Lines of ``requirements.txt`` (runtime roots, then the user's).
    constraints
        Lines of ``constraints.txt`` (``name==version`` for every pin).
    notes
        Human-readable messages about dropped or changed user requirements.
    user
        The user's requirements alone, as installed (after the pin policy): what a pruned
        role keeps with its closure (``image_builder.role_env``).
    """

    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    notes: tuple[str, ...]
    user: tuple[str, ...] = ()


def merge_requirements(
    *,
    roots: Iterable[str],
    user: Iterable[str],
    pins: Mapping[str, str],
    source: str,
    extra_pins: Mapping[str, str] | None = None,
) -> MergedRequirements:
    """Merge the runtime's root requirements with a user's requirement lines.

    Parameters
    ----------
    roots
        Requirements of the FLOps runtime in the image (names; versions come from ``pins``).
    user
        The user's requirement lines (comments and blank lines allowed).
    pins
        Canonical name -> pinned version.
    source
        The user's file name, for messages.
    extra_pins
        Exact pins of FLOps' optional extras (see :mod:`image_builder.pin_policy`).

    Returns
    -------
    MergedRequirements
        The files' lines and a note for every user line that was changed or dropped.
    """
    policy = apply_pin_policy(user, pins=pins, source=source, extra_pins=extra_pins)
    lines = [*dict.fromkeys(roots), *policy.requirements]
    notes = list(policy.notes)
    for line in policy.options:
        if line.startswith(_KEPT_OPTIONS):
            lines.append(line)
        else:
            notes.append(f"{source}: ignored {line!r} (includes, editable and local "
                         "installs are not supported in images)")
    notes += [f"{source}: ignored {line!r} (not a requirement pip can install from an index)"
              for line in policy.invalid]
    constraints = tuple(f"{name}=={version}" for name, version in sorted(pins.items()))
    return MergedRequirements(tuple(lines), constraints, tuple(notes),
                              tuple(policy.requirements))


def runtime_roots(exclude: Iterable[str] = MANAGER_ONLY) -> tuple[str, ...]:
    """Return the names of the FLOps runtime's direct dependencies needed in images.

    ``mlflow`` is replaced by ``mlflow-skinny`` (see :data:`REPLACED`).
    """
    excluded = {canonicalize_name(n) for n in exclude}
    names: list[str] = []
    for req in _requirements_of(RUNTIME_DISTRIBUTION):
        name: str = canonicalize_name(req.name)
        name = REPLACED.get(name, name)
        if name not in excluded and name not in names:
            names.append(name)
    return tuple(names)


def runtime_pins() -> dict[str, str]:
    """Return canonical name -> installed version for the FLOps runtime's dependency closure.

    Reads the metadata of the distributions installed beside the builder (markers evaluated
    for this interpreter, extras not followed); the runtime distribution itself is left out.
    """
    pins: dict[str, str] = {}
    todo = [RUNTIME_DISTRIBUTION]
    while todo:
        dist_name = todo.pop()
        for req in _requirements_of(dist_name):
            name = canonicalize_name(req.name)
            if name in pins:
                continue
            try:
                pins[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
            todo.append(name)
    return pins


def _requirements_of(dist_name: str) -> list[Requirement]:
    env = {k: str(v) for k, v in default_environment().items()}
    result = []
    for text in metadata.requires(dist_name) or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        result.append(req)
    return result


def extras_pins(dist_name: str = RUNTIME_DISTRIBUTION) -> dict[str, str]:
    """Return canonical name -> version of the exact (``==``) pins of FLOps' optional extras."""
    pins: dict[str, str] = {}
    try:
        requirements = metadata.requires(dist_name) or []
    except metadata.PackageNotFoundError:  # running from a source tree
        return pins
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or "extra" not in str(req.marker):
            continue
        exact = [spec.version for spec in req.specifier if spec.operator == "=="]
        if len(exact) == 1:
            pins[canonicalize_name(req.name)] = exact[0]
    return pins
