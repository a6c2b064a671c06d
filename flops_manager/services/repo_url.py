"""Validation of repository URLs (no transport tricks such as ``ext::`` or option injection)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

_SCP_LIKE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9.-]*:"
                       r"[A-Za-z0-9_./~][A-Za-z0-9_./~-]*$")
_HOST = re.compile(r"^[A-Za-z0-9_\[][A-Za-z0-9_.:\[\]-]*$")  # never an option ('-o...')
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./~%+@:-]*$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,254}$")


def check_repository_url(url: str, *, allow_local: bool) -> str | None:
    """Return a message explaining why ``url`` is not allowed, or ``None`` if it is fine.

    Allowed: ``https://host/path``, ``ssh://[user@]host[:port]/path``, ``user@host:path`` and,
    when ``allow_local``, ``file:///abs/path`` and absolute local paths.
    """
    if not url or len(url) > 2048 or any(c.isspace() or ord(c) < 32 for c in url):
        return "must be a non-empty URL without spaces or control characters"
    if url.startswith("-") or "::" in url:
        return "transport options and helpers (e.g. 'ext::', '--upload-pack') are not allowed"
    if url.startswith("/"):
        if not allow_local:
            return "local repositories are not allowed by this manager"
        return None if _SAFE_PATH.match(url) and ".." not in url.split("/") else "invalid path"
    if _SCP_LIKE.match(url):
        return None
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        if not allow_local:
            return "file:// repositories are not allowed by this manager"
        ok = parsed.netloc in ("", "localhost") and parsed.path.startswith("/")
        ok = ok and ".." not in parsed.path.split("/")
        return None if ok and _SAFE_PATH.match(parsed.path) else "use file:///absolute/path"
    if scheme not in ("https", "ssh"):
        return f"unsupported scheme {scheme or url!r}; use https://, ssh://, git@host:path"
    try:
        host = parsed.hostname
    except ValueError:
        host = None
    if not host or not parsed.path.strip("/") or not _SAFE_PATH.match(parsed.path):
        return "must name a host and a repository path"
    if not _HOST.match(host) or (parsed.username or "").startswith("-"):
        return "the host and user name must not start with '-' (option injection)"
    if scheme == "https" and parsed.password:
        return "do not put credentials in the URL"
    return None


def check_ref(ref: str) -> str | None:
    """Return a message if ``ref`` is not a plausible branch, tag or commit name."""
    if not _REF.match(ref) or ".." in ref or ref.endswith((".lock", "/", ".")):
        return "must be a branch, tag or commit name (letters, digits, '_', '.', '/', '-')"
    return None


def local_path(url: str) -> Path | None:
    """The directory a ``file://`` URL or absolute path names; ``None`` for remote URLs."""
    if url.startswith("/"):
        return Path(url)
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme.lower() == "file" else None


def check_local_repository(url: str) -> str | None:
    """Return a message if the local repository ``url`` names is missing or not Git."""
    path = local_path(url)
    if path is None:
        return None
    if not path.is_dir():
        return (f"{path} does not exist on the manager's machine (or is not a directory): "
                "pass an existing Git repository")
    if not (path / ".git").exists() and not (path / "HEAD").is_file():
        return (f"{path} is not a Git repository: commit it (git init && git add -A && "
                "git commit -m init), or submit it with `flops project create --repo "
                f"{path}`, which sends a snapshot of a plain directory")
    return None
