"""Validated data-set names and their safe mapping to paths under the storage root.

A data set is addressed by ``(tag, name)``; its id is ``"<tag>/<name>"``. The tag must pass
:func:`flops_contracts.ids.check_data_tag` and the name
:func:`flops_contracts.ids.check_identifier`, so neither can hold a path separator, ``..``, a NUL
byte or more than 128 (tag) / 63 (name) characters. Every path is additionally resolved and checked
to lie inside the root, so a symbolic link cannot lead outside it either.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

from flops_contracts.ids import check_data_tag, check_identifier

MOCK_TAG_PREFIX = "mock-"
"""Data tags ``mock-<project id>`` hold a project's mock data partitions on FLOps nodes."""
PARQUET_SUFFIX = ".parquet"
MANIFEST_SUFFIX = ".manifest.json"
TEMP_DIR_NAME = ".tmp"


def mock_data_tag(project_id: str) -> str:
    """The tag under which project ``project_id``'s mock data partitions are written."""
    return f"{MOCK_TAG_PREFIX}{project_id}"


def mock_tag_project(tag: str) -> str | None:
    """The project whose mock data ``tag`` holds (``None`` for other tags)."""
    if not tag.startswith(MOCK_TAG_PREFIX):
        return None
    return tag.removeprefix(MOCK_TAG_PREFIX) or None


@dataclasses.dataclass(frozen=True)
class DatasetKey:
    """The validated address of one data set.

    Attributes
    ----------
    tag
        The data tag (a project's learners read every data set under its tags).
    name
        The data set's name, unique within its tag.
    """

    tag: str
    name: str

    def __post_init__(self) -> None:
        check_data_tag(self.tag)
        check_identifier(self.name, what="data set name")

    @property
    def dataset_id(self) -> str:
        """The data set id ``"<tag>/<name>"``."""
        return f"{self.tag}/{self.name}"

    @classmethod
    def parse(cls, dataset_id: str) -> DatasetKey:
        """Parse and validate a data set id ``"<tag>/<name>"``.

        Raises
        ------
        ValueError
            If the id does not have exactly one ``/`` or either part is invalid.
        """
        parts = dataset_id.split("/")
        if len(parts) != 2:
            raise ValueError(f"data set id {dataset_id!r} is invalid: expected '<tag>/<name>'")
        return cls(parts[0], parts[1])


def new_dataset_name() -> str:
    """Return a fresh unique data set name (``"ds-"`` and 16 hex digits)."""
    return f"ds-{uuid.uuid4().hex[:16]}"


def inside_root(root: Path, path: Path) -> Path:
    """Return ``path`` resolved, after checking that it lies strictly inside ``root``.

    Raises
    ------
    ValueError
        If the resolved path is the root itself or outside it.
    """
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved == resolved_root or not resolved.is_relative_to(resolved_root):
        raise ValueError(f"path {str(path)!r} resolves outside the data root")
    return resolved


def parquet_path(root: Path, key: DatasetKey) -> Path:
    """Return the checked path of the data set's Parquet file."""
    return inside_root(root, root / key.tag / f"{key.name}{PARQUET_SUFFIX}")


def manifest_path(root: Path, key: DatasetKey) -> Path:
    """Return the checked path of the data set's manifest."""
    return inside_root(root, root / key.tag / f"{key.name}{MANIFEST_SUFFIX}")


def tag_dir(root: Path, tag: str) -> Path:
    """Return the checked directory holding the data sets of ``tag``."""
    return inside_root(root, root / check_data_tag(tag))
