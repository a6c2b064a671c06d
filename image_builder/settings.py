"""Settings of the image builder, read from ``FLOPS_<FIELD>`` variables or ``FLOPS_CONFIG_FILE``."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

import flops_contracts
from flops_contracts.ids import check_identifier
from image_builder.pip_config import PipConfig, host_pip_config
from image_builder.platforms import BINFMT_DIR

DEFAULT_BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
"""Official slim Python image; the interpreter version must match the builder's (pins)."""


class BuildTargetName(enum.StrEnum):
    """What ``python -m image_builder`` builds (``FLOPS_TARGET``)."""

    ENVIRONMENT = "environment"
    """A virtual environment on this machine (the local backend)."""
    IMAGES = "images"
    """Learner and aggregator OCI images, pushed to ``registry``."""
    MODEL_IMAGE = "model_image"
    """An inference-server image holding one trained model, pushed to ``registry``."""


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
    target
        ``environment`` (default), ``images`` or ``model_image``.

    Image targets only (``images``, ``model_image``):

    registry
        ``host[:port][/path]`` images are pushed to, e.g. ``registry.example.com/flops``.
    registry_tls_verify
        Verify the registry's TLS certificate; ``false`` also allows plain HTTP.
    registry_username, registry_password
        Registry credentials (set the password as the secret variable
        ``FLOPS_REGISTRY_PASSWORD``); written to a private auth file, never onto a command line.
    registry_auth_file
        An existing containers auth file (``auth.json``) to use instead.
    image_namespace
        First path component(s) of image names below ``registry``.
    trusted_images
        Digest references (``host/path@sha256:...``) of images FLOps recorded pushing
        (JSON list; the manager hands its records to its builders). An existing tag is a
        cache hit only where its digest is one of these; any other is rebuilt and pushed.
    base_image
        Image both build stages start from; must have ``python3`` with ``venv``.
    python_in_image
        Interpreter of the base image the virtual environment is created with.
    extra_ca_bundle
        PEM bundle mounted (not committed) into builds and given to pip as ``PIP_CERT``; must
        hold every CA pip needs (e.g. the host's bundle plus a proxy's CA).
    pip_from_host
        Install from where the builder's own pip does (``pip config list``: index, extra
        indexes, find-links, trusted hosts; local directories are mounted read-only into
        builds), e.g. a mirror or local CPU wheels of PyTorch. ``pip_config`` wins.
    pip_config
        Explicit pip locations for builds (JSON: ``index_url``, ``extra_index_urls``,
        ``find_links``, ``trusted_hosts``). The trusted CA is ``extra_ca_bundle``.
    platforms
        ``os/arch[/variant]`` to build for (JSON list); default: the build host's platform.
    binfmt_dir
        Where the kernel lists its binfmt_misc emulation handlers (a foreign platform needs
        an enabled ``qemu-<arch>`` handler there).
    buildah
        The buildah program.
    build_timeout_s
        Timeout per buildah command.
    install_tini
        ``apt-get install tini`` in the image if the base image lacks it (tini is PID 1 and
        forwards SIGTERM to Python).
    slim_runtime
        Purge the Debian packages a Python runtime never uses from the images' base (apt,
        perl, the account and file-system tools: ``containerfile.RUNTIME_PURGE``, ~40 MB) and
        put the result in one layer. That layer starts without the base image's own
        configuration: FLOps sets ``LANG``, ``PATH`` and its variables again, but a base that
        needs other variables (``LD_LIBRARY_PATH`` of a CUDA image) needs this off.
    model_uri, tracking_uri
        ``model_image``: the MLflow model URI (``models:/NAME/VERSION``, ``runs:/ID/PATH``, any
        artifact URI, or a local model directory) and the MLflow tracking server.
    model_name
        ``model_image``: image name component (default: derived from ``model_uri``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    repository_url: str = ""
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
    target: BuildTargetName = BuildTargetName.ENVIRONMENT
    registry: str = ""
    registry_tls_verify: bool = True
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    registry_auth_file: Path | None = None
    image_namespace: str = "flops"
    trusted_images: list[str] = Field(default_factory=list)
    base_image: str = DEFAULT_BASE_IMAGE
    python_in_image: str = "python3"
    extra_ca_bundle: Path | None = None
    pip_from_host: bool = False
    pip_config: PipConfig | None = None
    platforms: list[str] = Field(default_factory=list)
    binfmt_dir: Path = BINFMT_DIR
    buildah: str = "buildah"
    build_timeout_s: float = Field(default=3600.0, gt=0)
    install_tini: bool = True
    slim_runtime: bool = True
    model_uri: str | None = None
    tracking_uri: str | None = None
    model_name: str | None = None

    @field_validator("project_id", "instance")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return check_identifier(value, what="identifier")

    @field_validator("ref")
    @classmethod
    def _empty_ref(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        text = value.strip().rstrip("/")
        for prefix in ("docker://", "https://", "http://"):
            text = text.removeprefix(prefix)
        if text.startswith("-") or any(ch.isspace() for ch in text):
            raise ValueError("registry must be host[:port][/path]")
        return text

    @field_validator("image_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        parts = value.strip("/").split("/")
        if not all(p and p.islower() and p.replace("-", "").replace("_", "").replace(".", "")
                   .isalnum() for p in parts):
            raise ValueError("image_namespace must be lower-case path components [a-z0-9._-]")
        return "/".join(parts)

    @model_validator(mode="after")
    def _target_needs(self) -> Self:
        if self.target is not BuildTargetName.ENVIRONMENT and not self.registry:
            raise ValueError(f"target {self.target.value!r} needs registry (FLOPS_REGISTRY)")
        if self.target is BuildTargetName.MODEL_IMAGE and not self.model_uri:
            raise ValueError("target 'model_image' needs model_uri (FLOPS_MODEL_URI)")
        if self.target is BuildTargetName.IMAGES and not self.repository_url:
            raise ValueError(f"target {self.target.value!r} needs repository_url "
                             "(FLOPS_REPOSITORY_URL)")
        if (self.registry_username is None) != (self.registry_password is None):
            raise ValueError("registry_username and registry_password go together")
        return self

    def effective_pip_config(self) -> PipConfig:
        """Return the pip locations builds use: ``pip_config``, else the host's if asked."""
        if self.pip_config is not None:
            return self.pip_config
        return host_pip_config(self.python) if self.pip_from_host else PipConfig()

    def scratch_dir(self) -> Path:
        """Return the directory for new checkouts."""
        return (self.work_dir or self.cache_dir / "work").expanduser()
