"""Which repository URLs and refs the builder accepts (pure checks, no I/O but path resolving).

Accepted: ``https://``, ``http://``, ``ssh://``, ``git://`` and scp-like ``user@host:path``
URLs; ``file://`` URLs and plain local paths only when local sources are allowed. Rejected with a
clear message: git's ``<transport>::<address>`` remote helpers (``ext::``, ``fd::``, ...), every
other scheme, and URLs, hosts or refs starting with ``-`` (they would be read as options).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.parse import urlsplit

from image_builder.outcome import SourceError

REMOTE_SCHEMES = ("https", "http", "ssh", "git")
LOCAL_SCHEMES = ("file",)
_HELPER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?([A-Za-z0-9][A-Za-z0-9.-]*):(?!//)(.+)$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
SHORT_SHA = re.compile(r"^[0-9a-fA-F]{7,39}$")
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}$")


@dataclasses.dataclass(frozen=True)
class Source:
    """A validated repository location.

    Attributes
    ----------
    url
        What git is given (an absolute path for local repositories).
    is_local
        Whether it reads the builder's own file system.
    """

    url: str
    is_local: bool


def parse_source(url: str, *, allow_local: bool) -> Source:
    """Validate a repository URL.

    Raises
    ------
    SourceError
        Naming why the URL is rejected and what is accepted instead.
    """
    text = url.strip()
    accepted = "use https://, ssh://, git:// or user@host:path" + (
        ", file:// or a local path" if allow_local else ""
    )
    if not text:
        raise SourceError(f"repository URL is empty; {accepted}")
    if any(ch in text for ch in "\x00\n\r\t"):
        raise SourceError("repository URL contains control characters")
    if text.startswith("-"):
        raise SourceError(
            f"repository URL {text!r} starts with '-' (read as an option); {accepted}"
        )
    if _HELPER.match(text):
        helper = text.split("::", 1)[0]
        raise SourceError(
            f"repository URL uses git remote helper '{helper}::', which can run commands; "
            f"{accepted}"
        )
    scheme_match = _SCHEME.match(text)
    if scheme_match:
        return _parse_url(text, scheme_match.group(1).lower(), allow_local=allow_local,
                          accepted=accepted)
    scp = _SCP_LIKE.match(text)
    if scp and "/" not in text.split(":", 1)[0]:
        if scp.group(2).startswith("-"):
            raise SourceError(f"repository path in {text!r} starts with '-'; {accepted}")
        return Source(url=text, is_local=False)
    if not allow_local:
        raise SourceError(
            f"repository {text!r} is a local path; local repositories are disabled "
            f"(set FLOPS_ALLOW_LOCAL=true to allow them); {accepted}"
        )
    return Source(url=str(Path(text).expanduser().resolve()), is_local=True)


def _parse_url(text: str, scheme: str, *, allow_local: bool, accepted: str) -> Source:
    if scheme in LOCAL_SCHEMES:
        if not allow_local:
            raise SourceError(
                f"repository URL {text!r} reads the builder's file system; local repositories "
                f"are disabled (set FLOPS_ALLOW_LOCAL=true to allow them); {accepted}"
            )
        return Source(url=text, is_local=True)
    if scheme not in REMOTE_SCHEMES:
        raise SourceError(f"repository URL scheme {scheme!r} is not supported; {accepted}")
    parts = urlsplit(text)
    host = parts.hostname or ""
    if not host:
        raise SourceError(f"repository URL {text!r} has no host; {accepted}")
    if host.startswith("-") or (parts.username or "").startswith("-"):
        raise SourceError(f"repository URL {text!r} has a host starting with '-'")
    if parts.password:
        raise SourceError(
            "repository URL must not carry a password; configure git credentials instead"
        )
    return Source(url=text, is_local=False)


def check_ref(ref: str) -> str:
    """Validate a branch, tag or commit name and return it.

    Raises
    ------
    SourceError
        If the ref could be read as an option or is not a valid ref name.
    """
    if ref.startswith("-"):
        raise SourceError(f"ref {ref!r} starts with '-' (read as an option)")
    bad = (
        not _REF.match(ref) or ".." in ref or "//" in ref or "@{" in ref
        or ref.endswith((".", "/", ".lock"))
    )
    if bad:
        raise SourceError(
            f"ref {ref!r} is not a valid branch, tag or commit name (letters, digits and "
            "'._/+-', no '..')"
        )
    return ref
