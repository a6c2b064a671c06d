"""What a build produces: the result on success and the typed error on failure."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flops_contracts.errors import ErrorCode, FlopsError


class BuildStep(enum.StrEnum):
    """The steps of a build.

    An environment build runs ``clone, validate, env, smoke``; an image build runs ``clone,
    validate, prepare, cache, context, build, push``; a model image build runs ``download,
    prepare, cache, context, build, push``.
    """

    CLONE = "clone"
    VALIDATE = "validate"
    ENV = "env"
    SMOKE = "smoke"
    DOWNLOAD = "download"
    PREPARE = "prepare"
    CACHE = "cache"
    CONTEXT = "context"
    BUILD = "build"
    PUSH = "push"


class BuildError(FlopsError):
    """A build step failed.

    Parameters
    ----------
    message
        What went wrong and what to fix.
    step
        The step that failed (set by the builder when the raiser does not know it).
    code
        Error category (default ``internal``).
    details
        Structured details, e.g. ``output_tail`` with the end of a tool's output.
    """

    def __init__(
        self,
        message: str,
        *,
        step: BuildStep | None = None,
        code: ErrorCode | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.step = step


class SourceError(BuildError):
    """The repository URL or ref is rejected, or the checkout is unsafe."""

    default_code = ErrorCode.INVALID_CONFIG


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """A ready environment for one repository commit.

    Attributes
    ----------
    env_dir
        The project's virtual environment.
    python
        Its interpreter.
    commit
        Full commit sha that was checked out.
    repo_dir
        The checkout inside the cache.
    cache_hit
        Whether the environment was reused from the cache.
    timings
        Seconds per step (``clone``, ``validate``, ``env``, ``smoke``) and ``total``.
    dependency_hash
        sha256 of the dependency file.
    cache_key
        Key of the environment in the cache (commit, dependency hash, runtime version).
    """

    env_dir: Path
    python: Path
    commit: str
    repo_dir: Path
    cache_hit: bool
    timings: dict[str, float]
    dependency_hash: str
    cache_key: str

    def to_event_data(self) -> dict[str, Any]:
        """Return the JSON-ready payload of the ``completed`` event."""
        return {
            "env_dir": str(self.env_dir),
            "python": str(self.python),
            "commit": self.commit,
            "repo_dir": str(self.repo_dir),
            "cache_hit": self.cache_hit,
            "timings": self.timings,
            "dependency_hash": self.dependency_hash,
            "cache_key": self.cache_key,
        }


@dataclasses.dataclass(frozen=True)
class ImageBuildResult:
    """Images pushed to (or found in) the registry.

    Attributes
    ----------
    images
        Role (``learner``, ``aggregator``, ``inference_server``) -> image reference.
    cache_hit
        Whether every image already existed for every platform (nothing was built).
    timings
        Seconds per step and ``total``.
    platforms
        The platforms every image has.
    commit
        Commit of the user repository (``None`` for model images).
    details
        More keys for the ``completed`` event (dependency hash, tag, log file, ...).
    """

    images: dict[str, str]
    cache_hit: bool
    timings: dict[str, float]
    platforms: tuple[str, ...]
    commit: str | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_event_data(self) -> dict[str, Any]:
        """Return the JSON-ready payload of the ``completed`` event."""
        return {
            **self.details,
            "images": dict(self.images),
            "commit": self.commit,
            "cache_hit": self.cache_hit,
            "timings": self.timings,
            "platforms": list(self.platforms),
        }
