"""Check out exactly one commit of a repository with git, safely.

Git always runs with ``GIT_TERMINAL_PROMPT=0``, an allow-list of transports
(``GIT_ALLOW_PROTOCOL``), ``protocol.ext.allow=never``, no hooks, no submodules, a timeout, and
``--`` before positional arguments. The checkout is rejected if a symlink points outside it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from image_builder import commands
from image_builder.cache import CacheLayout, locked, read_marker, remove_tree, write_marker
from image_builder.outcome import BuildError, SourceError
from image_builder.sources import FULL_SHA, SHORT_SHA, Source, check_ref

logger = logging.getLogger(__name__)

MARKER = ".flops-checkout.json"
_SAFE_CONFIG = (
    "-c", "protocol.ext.allow=never",
    "-c", "protocol.fd.allow=never",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "submodule.recurse=false",
    "-c", "advice.detachedHead=false",
)


@dataclasses.dataclass(frozen=True)
class Checkout:
    """A verified checkout.

    Attributes
    ----------
    commit
        Full sha of the checked-out commit.
    repo_dir
        The working tree inside the cache.
    reused
        Whether it was already in the cache.
    resolved_ref
        The full ref name the requested ref resolved to (``None`` for a commit sha).
    """

    commit: str
    repo_dir: Path
    reused: bool
    resolved_ref: str | None


class Git:
    """Runs git with the safety settings for one source.

    Parameters
    ----------
    source
        The validated repository location.
    timeout
        Seconds allowed per git command.
    """

    def __init__(self, source: Source, *, timeout: float) -> None:
        self.source = source
        self.timeout = timeout
        protocols = "https:http:ssh:git" + (":file" if source.is_local else "")
        env = dict(os.environ)
        env.update({
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": protocols,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GCM_INTERACTIVE": "never",
            "LC_ALL": "C",
        })
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        self.env: Mapping[str, str] = env

    def run(self, args: Sequence[str], *, cwd: Path | None = None,
            check: bool = True) -> commands.CommandOutput:
        """Run ``git <safe config> args``."""
        return commands.run(
            ["git", *_SAFE_CONFIG, *args], timeout=self.timeout, cwd=cwd, env=self.env,
            check=check, what=f"git {args[0]}",
        )

    def resolve(self, ref: str | None) -> tuple[str | None, str | None]:
        """Resolve ``ref`` to ``(commit sha, full ref name)`` with ``git ls-remote``.

        Returns ``(None, None)`` for an abbreviated sha, which only a fetch can resolve.

        Raises
        ------
        SourceError
            If the ref does not exist in the repository.
        """
        if ref is not None and FULL_SHA.match(ref):
            return ref.lower(), None
        if ref is None:
            out = self.run(["ls-remote", "--symref", "--", self.source.url, "HEAD"]).stdout
            refs = _parse_ls_remote(out)
            if "HEAD" not in refs:
                raise SourceError(f"{self.source.url}: the repository has no default branch")
            target = next((line.split()[1] for line in out.splitlines()
                           if line.startswith("ref:")), "HEAD")
            return refs["HEAD"], target
        out = self.run(["ls-remote", "--", self.source.url, ref, ref + "^{}"]).stdout
        refs = _parse_ls_remote(out)
        for name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"):
            if name in refs:
                return refs[name], name.removesuffix("^{}")
        if SHORT_SHA.match(ref):
            return None, None
        raise SourceError(f"{self.source.url}: no branch, tag or commit named {ref!r}")


def _parse_ls_remote(text: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and FULL_SHA.match(parts[0]):
            refs[parts[1]] = parts[0].lower()
    return refs


def checkout(
    source: Source,
    ref: str | None,
    *,
    cache: CacheLayout,
    work_dir: Path,
    timeout: float,
) -> Checkout:
    """Resolve ``ref`` and return a verified checkout of that commit from the cache.

    Parameters
    ----------
    source
        The repository location.
    ref
        Branch, tag or (full or abbreviated) commit; ``None`` for the default branch.
    cache
        Where verified checkouts are kept, one per commit.
    work_dir
        Where new checkouts are prepared before they enter the cache.
    timeout
        Seconds allowed per git command.

    Raises
    ------
    SourceError
        For an unknown ref or a symlink pointing outside the checkout.
    BuildError
        When git fails (details carry git's output).
    """
    if ref is not None:
        check_ref(ref)
    git = Git(source, timeout=timeout)
    commit, resolved = git.resolve(ref)
    if commit is not None and read_marker(cache.checkout(commit) / MARKER) is not None:
        return Checkout(commit, cache.checkout(commit), True, resolved)
    work_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="checkout-", dir=work_dir))
    try:
        git.run(["init", "--quiet", "--", str(staging)])
        commit = _fetch(git, staging, commit=commit, ref=ref, resolved=resolved)
        git.run(["checkout", "--quiet", "--detach", commit], cwd=staging)
        head = git.run(["rev-parse", "--verify", "HEAD"], cwd=staging).stdout.strip()
        if head != commit:
            raise BuildError(f"checked out {head}, expected {commit}")
        reject_escaping_symlinks(staging)
        target = cache.checkout(commit)
        with locked(cache.lock_file(f"checkout-{commit}")):
            if read_marker(target / MARKER) is None:
                remove_tree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(staging), str(target))
                write_marker(target / MARKER, {"commit": commit, "url": source.url})
        return Checkout(commit, target, False, resolved)
    finally:
        remove_tree(staging)


def _fetch(git: Git, staging: Path, *, commit: str | None, ref: str | None,
           resolved: str | None) -> str:
    """Fetch the wanted commit into ``staging`` and return its full sha."""
    url = git.source.url
    fetch = ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules"]
    if commit is not None:
        first = git.run([*fetch, "--depth", "1", "--", url, commit], cwd=staging, check=False)
        if first.returncode == 0:  # peel, in case the sha names an annotated tag
            return git.run(["rev-parse", "--verify", "FETCH_HEAD^{commit}"],
                           cwd=staging).stdout.strip()
        if resolved is None:  # a bare sha the server will not serve directly
            logger.info("fetching %s by sha failed; fetching all branches", commit)
        else:
            git.run([*fetch, "--depth", "1", "--", url, resolved], cwd=staging)
            fetched = git.run(["rev-parse", "--verify", "FETCH_HEAD^{commit}"],
                              cwd=staging).stdout.strip()
            if fetched != commit:
                raise BuildError(f"{resolved} moved from {commit} to {fetched} during the build")
            return commit
    git.run([*fetch, "--", url, "+refs/heads/*:refs/remotes/origin/*",
             "+refs/tags/*:refs/tags/*"], cwd=staging)
    wanted = commit or ref or "HEAD"
    out = git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{wanted}^{{commit}}"],
                  cwd=staging, check=False)
    if out.returncode != 0:
        raise SourceError(f"{url}: no commit {wanted!r}")
    return out.stdout.strip()


def reject_escaping_symlinks(root: Path) -> None:
    """Raise if a symlink in ``root`` (outside ``.git``) resolves outside ``root``.

    Raises
    ------
    SourceError
        Naming the link and its target.
    """
    real_root = os.path.realpath(root)
    for current, dirs, files in os.walk(root):
        if Path(current) == root and ".git" in dirs:
            dirs.remove(".git")
        for name in [*dirs, *files]:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                continue
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                rel = os.path.relpath(path, root)
                raise SourceError(
                    f"symlink {rel} points outside the repository (to {os.readlink(path)}); "
                    "remove it or make it point inside the repository"
                )
