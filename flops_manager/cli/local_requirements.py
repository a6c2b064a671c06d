"""``flops train-local`` and the repository's dependency file: the policy of every target.

train-local runs in the current environment and installs nothing. It reads the repository's
dependency file like the builder does, applies the same pin policy
(:mod:`image_builder.pin_policy`: a requirement that conflicts with FLOps' runtime pins is
dropped with a warning) and warns about every other requirement this environment does not
satisfy, with the command that fixes it.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from image_builder.dependencies import read_dependencies, user_requirement_lines
from image_builder.pin_policy import apply_pin_policy
from image_builder.pins import extras_pins, runtime_pins
from learner_base.repository import find_dependency_file


def unmet_requirements(
    requirements: Iterable[str], *, installed: Mapping[str, str | None], source: str
) -> list[str]:
    """Return a warning for each requirement the installed versions do not satisfy (pure).

    Parameters
    ----------
    requirements
        Valid requirement lines (after the pin policy).
    installed
        Canonical name -> installed version (``None``: not installed).
    source
        The user's file, for messages.
    """
    env = {k: str(v) for k, v in default_environment().items()}
    notes = []
    fix = ("train-local uses this environment and installs nothing: run pip install {line!r} "
           "first, or submit the project through the API (which builds its environment)")
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        version = installed.get(canonicalize_name(req.name))
        if version is None:
            notes.append(f"{source}: {line!r} is not installed; " + fix.format(line=line))
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            notes.append(f"{source}: {line!r} is not satisfied ({req.name} {version} is "
                         "installed); " + fix.format(line=line))
    return notes


def _installed(names: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[canonicalize_name(name)] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[canonicalize_name(name)] = None
    return versions


def requirement_warnings(repo_dir: Path) -> list[str]:
    """Apply the dependency policy to ``repo_dir`` for a run in this environment.

    Returns an empty list for a repository without a dependency file.

    Raises
    ------
    ContractError
        If the dependency file cannot be parsed.
    """
    if find_dependency_file(repo_dir) is None:
        return []
    deps = read_dependencies(repo_dir)
    source = deps.path.name
    policy = apply_pin_policy(user_requirement_lines(deps), pins=runtime_pins(), source=source,
                              extra_pins=extras_pins())
    notes = list(policy.notes)
    if deps.skipped:
        notes.append(f"{source}: skipped entries pip cannot install: {', '.join(deps.skipped)}")
    names = [Requirement(line).name for line in policy.requirements]
    notes += unmet_requirements(policy.requirements, installed=_installed(names), source=source)
    return notes


__all__ = ["requirement_warnings", "unmet_requirements"]
