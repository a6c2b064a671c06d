"""The builder host's pip configuration (index, extra index, find-links, trusted hosts) in builds.

Users behind a mirror or with local wheel directories (e.g. CPU builds of PyTorch) configure pip
once on the builder host; image builds then install from the same places. Pure functions read
``pip config list`` output and turn the configuration into what one ``buildah bud`` needs:
``--build-arg PIP_*`` values and read-only mounts of local directories (``file://`` indexes and
find-links directories, at the same path; the mounts are not committed into images).
:func:`host_pip_config` is the only I/O: it asks the builder's own pip.
The trusted CA is the separate ``extra_ca_bundle`` setting (``PIP_CERT``).
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

BUILD_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST")
"""The build arguments the deps stage declares (empty: pip's defaults)."""


@dataclasses.dataclass(frozen=True)
class PipConfig:
    """Where pip finds packages.

    Attributes
    ----------
    index_url
        The main index (``""``: PyPI).
    extra_index_urls, find_links, trusted_hosts
        More indexes, wheel directories or pages, hosts pip trusts without TLS.
    """

    index_url: str = ""
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.index_url or self.extra_index_urls or self.find_links
                    or self.trusted_hosts)


@dataclasses.dataclass(frozen=True)
class PipBuildInputs:
    """What a build needs for a :class:`PipConfig`: build arguments and read-only mounts."""

    build_args: dict[str, str]
    mounts: tuple[tuple[Path, str], ...]


_KEYS = {"index-url": "index_url", "extra-index-url": "extra_index_urls",
         "find-links": "find_links", "trusted-host": "trusted_hosts"}


def parse_config_list(text: str) -> PipConfig:
    """Parse ``pip config list`` output (``scope.key='value'`` lines; later scopes win)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, raw = line.partition("=")
        key = name.rsplit(".", 1)[-1].strip()
        if not sep or key not in _KEYS:
            continue
        parsed = shlex.split(raw)
        values[_KEYS[key]] = parsed[0] if parsed else ""
    split = {k: tuple(v.split()) for k, v in values.items() if k != "index_url"}
    return PipConfig(index_url=values.get("index_url", ""), **split)


def host_pip_config(python: str = sys.executable, timeout: float = 60) -> PipConfig:
    """Return the pip configuration of ``python`` (files and ``PIP_*`` variables)."""
    out = subprocess.run([python, "-m", "pip", "config", "list"],  # noqa: S603 - no shell capture_output=True,
                         text=True, timeout=timeout, check=False)
    return parse_config_list(out.stdout) if out.returncode == 0 else PipConfig()


def _local_dir(location: str, *, index: bool) -> Path | None:
    """The directory to mount for a ``file://`` URL or a plain path (``None``: remote).

    A local index's pages may link to files beside it (``../../files/x.whl``): for an index
    ending in ``/simple`` the directory above it is mounted.
    """
    if location.startswith("file:"):
        path = Path(urlparse(location).path)
    elif "://" not in location:
        path = Path(location)
    else:
        return None
    return path.parent if index and path.name == "simple" else path


def build_inputs(config: PipConfig) -> PipBuildInputs:
    """Return the build arguments and mounts that make pip in a build use ``config``.

    Local directories are mounted read-only at the same path in the build (not committed), so
    every location, and every absolute or relative link in a local index, stays valid.
    """
    local = [_local_dir(config.index_url, index=True)] if config.index_url else []
    local += [_local_dir(u, index=True) for u in config.extra_index_urls]
    local += [_local_dir(u, index=False) for u in config.find_links]
    mounts = tuple((path, str(path)) for path in dict.fromkeys(p for p in local if p))
    args = {
        "PIP_INDEX_URL": config.index_url,
        "PIP_EXTRA_INDEX_URL": " ".join(config.extra_index_urls),
        "PIP_FIND_LINKS": " ".join(config.find_links),
        "PIP_TRUSTED_HOST": " ".join(config.trusted_hosts),
    }
    return PipBuildInputs({k: v for k, v in args.items() if v}, mounts)
