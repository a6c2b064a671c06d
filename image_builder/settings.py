"""Settings of the image builder, read from ``FLOPS_<FIELD>`` variables or ``FLOPS_CONFIG_FILE``."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

import flops_contracts
from flops_contracts.ids import check_identifier


def default_runtime_source() -> Path:
    """The source tree holding the installed ``flops_contracts`` package."""
    return Path(flops_contracts.__file__).resolve().parent.parent


class BuilderSettings(BaseModel):
    """What to build and where.

    Attributes
    ----------
    repository_url
        ``https://``, ``ssh://``, ``git://``, ``user@host:path``; ``file://`` or a local path
        only with ``allow_local``.
    ref
        Branch, tag or commit; default: the default branch's HEAD.
    project_id, instance
        Identity in the events.
    events_uri
        Where events go (``mqtt://``, ``file:///...jsonl``, ``log:``, empty = log only).
    cache_dir
        Checkouts, the runtime layer and project environments.
    work_dir
        Scratch space for new checkouts (default ``<cache_dir>/work``); best on the same file
        system as the cache.
    allow_local
        Accept ``file://`` URLs and local paths (they read the builder's file system).
    git_timeout_s, install_timeout_s, smoke_timeout_s
        Timeouts per git command, per environment step and for the smoke check.
    runtime_source
        FLOps source tree installed as the runtime layer.
    python
        Interpreter the environments are created with.
    system_site_packages
        Let the runtime layer see the interpreter's site-packages (off: environments are
        self-contained; on: faster, but packages of the host leak into builds).
    use_uv, uv
        Use uv (default; found beside ``sys.executable`` or on ``PATH`` unless ``uv`` names
        it); without it, ``python -m venv`` and pip are used.
    uv_cache_dir
        uv's cache (``UV_CACHE_DIR``); default: uv's own default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    repository_url: str
    ref: str | None = None
    project_id: str
    instance: str = "builder"
    events_uri: str = ""
    cache_dir: Path = Path("~/.cache/flops/image_builder")
    work_dir: Path | None = None
    allow_local: bool = False
    git_timeout_s: float = Field(default=300.0, gt=0)
    install_timeout_s: float = Field(default=1800.0, gt=0)
    smoke_timeout_s: float = Field(default=300.0, gt=0)
    runtime_source: Path = Field(default_factory=default_runtime_source)
    python: str = sys.executable
    system_site_packages: bool = False
    use_uv: bool = True
    uv: str | None = None
    uv_cache_dir: Path | None = None

    @field_validator("project_id", "instance")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return check_identifier(value, what="identifier")

    @field_validator("ref")
    @classmethod
    def _empty_ref(cls, value: str | None) -> str | None:
        return value or None

    def scratch_dir(self) -> Path:
        """Return the directory for new checkouts."""
        return (self.work_dir or self.cache_dir / "work").expanduser()
