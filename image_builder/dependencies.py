"""Read a repository's dependency file into pip requirements.

``requirements.txt`` is used as is; ``pyproject.toml`` contributes ``[project].dependencies``;
``conda.yaml`` contributes its ``pip:`` list and plain package names, everything else (versioned
conda specs, channels, ``python``, ``pip``) is reported as skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from flops_contracts.errors import ContractError
from learner_base.repository import DEPENDENCY_FILES, find_dependency_file

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONDA_ONLY = frozenset({"python", "pip"})


@dataclasses.dataclass(frozen=True)
class DependencySpec:
    """The pip-installable dependencies of a repository.

    Attributes
    ----------
    path
        The dependency file.
    requirements
        Requirement lines; ``None`` for a ``requirements.txt``, which is passed to the
        installer unchanged (so its options and includes keep working).
    skipped
        Entries that cannot be installed with pip (from ``conda.yaml``).
    digest
        sha256 of the file name and content.
    """

    path: Path
    requirements: tuple[str, ...] | None
    skipped: tuple[str, ...]
    digest: str

    def requirements_file(self, generated: Path) -> Path | None:
        """Return the file to install from, writing ``generated`` when needed.

        Returns ``None`` when there is nothing to install.
        """
        if self.requirements is None:
            return self.path
        if not self.requirements:
            return None
        generated.write_text("\n".join(self.requirements) + "\n", encoding="utf-8")
        return generated


def read_dependencies(repo_dir: Path) -> DependencySpec:
    """Find and parse the repository's dependency file.

    Raises
    ------
    ContractError
        If there is no dependency file or it cannot be parsed.
    """
    path = find_dependency_file(repo_dir)
    if path is None:
        raise ContractError(
            f"{repo_dir}: no dependency file; FLOps needs one of {', '.join(DEPENDENCY_FILES)} "
            "at the repository root"
        )
    raw = path.read_bytes()
    digest = hashlib.sha256(path.name.encode() + b"\0" + raw).hexdigest()
    if path.name == "requirements.txt":
        return DependencySpec(path, None, (), digest)
    text = raw.decode("utf-8", errors="replace")
    if path.name == "pyproject.toml":
        return DependencySpec(path, _from_pyproject(path, text), (), digest)
    requirements, skipped = _from_conda(path, text)
    return DependencySpec(path, requirements, skipped, digest)


def _from_pyproject(path: Path, text: str) -> tuple[str, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"{path}: not valid TOML: {exc}") from None
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ContractError(f"{path}: [project].dependencies must be a list of strings")
    return tuple(deps)


def _from_conda(path: Path, text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    deps = data.get("dependencies", []) if isinstance(data, dict) else None
    if not isinstance(deps, list):
        raise ContractError(f"{path}: needs a 'dependencies' list")
    keep: list[str] = []
    skipped: list[str] = []
    for entry in deps:
        if isinstance(entry, dict) and isinstance(entry.get("pip"), list):
            keep.extend(str(item) for item in entry["pip"])
        elif isinstance(entry, str) and _PLAIN_NAME.match(entry) and entry not in _CONDA_ONLY:
            keep.append(entry)
        else:
            skipped.append(str(entry))
    return tuple(keep), tuple(skipped)


def user_requirement_lines(deps: DependencySpec) -> tuple[str, ...]:
    """Return the repository's requirement lines (``requirements.txt`` read as is)."""
    if deps.requirements is not None:
        return deps.requirements
    return tuple(deps.path.read_text(encoding="utf-8", errors="replace").splitlines())
