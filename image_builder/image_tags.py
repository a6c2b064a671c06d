"""Image names and tags (pure functions).

Names: ``<registry>/<namespace>/<source slug>/<role>``, where the slug is the repository's (or
model's) name plus a hash of its full URL, so two repositories with the same name never share
images. Tags: ``<commit 12>-<dependency hash 12>-<runtime version>-<recipe 8>``: the commit,
the dependency file's hash, the FLOps runtime version (version + source digest) and a digest of
the rendered recipe (Containerfile, requirements, constraints, so a new base image or new pins
give a new tag). Equal tag = equal inputs, which is what makes "tag exists" a valid cache check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from urllib.parse import urlsplit

_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_TAG = 128


@dataclasses.dataclass(frozen=True)
class TagInputs:
    """What an image tag encodes.

    Attributes
    ----------
    source_id
        Commit sha (FL images) or model content digest (model images).
    dependency_hash
        sha256 of the dependency file (or of the model's requirements).
    runtime_version
        FLOps runtime version, ``<version>-<source digest>``.
    recipe_digest
        sha256 of the rendered recipe (Containerfile + requirements + constraints).
    """

    source_id: str
    dependency_hash: str
    runtime_version: str
    recipe_digest: str


def image_tag(inputs: TagInputs) -> str:
    """Return the tag for ``inputs`` (at most 128 characters of ``[A-Za-z0-9_.-]``)."""
    runtime = _TAG_UNSAFE.sub("_", inputs.runtime_version)
    tag = (f"{inputs.source_id[:12]}-{inputs.dependency_hash[:12]}-{runtime}-"
           f"{inputs.recipe_digest[:8]}")
    return tag[:MAX_TAG]


def slug(name: str, identity: str) -> str:
    """Return ``<sanitised name>-<8 hex of sha256(identity)>`` (lower case, ≤ 48 characters)."""
    clean = _UNSAFE.sub("-", name.lower()).strip("-._")[:39] or "source"
    return f"{clean}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def repository_slug(url: str) -> str:
    """Return the image path component for a repository URL.

    Examples
    --------
    >>> repository_slug("https://github.com/org/My_Repo.git")[:8]
    'my_repo-'
    """
    text = url.strip().rstrip("/")
    path = urlsplit(text).path if "://" in text else text.split(":", 1)[-1]
    name = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return slug(name, text)


def model_slug(model_uri: str, name: str | None = None) -> str:
    """Return the image path component for a model (``name`` wins over the URI's parts).

    ``models:/NAME/VERSION`` gives ``NAME``; ``runs:/ID/PATH`` gives ``run-<ID prefix>``;
    other URIs and directories give their last path component.
    """
    text = model_uri.strip().rstrip("/")
    if name:
        base = name
    elif text.startswith("models:/"):
        base = text.removeprefix("models:/").split("/", 1)[0].split("@", 1)[0]
    elif text.startswith("runs:/"):
        base = "run-" + text.removeprefix("runs:/").split("/", 1)[0][:12]
    else:
        base = text.rsplit("/", 1)[-1]
    return slug(base, text)


def image_name(*, registry: str, namespace: str, source: str, role: str) -> str:
    """Return ``<registry>/<namespace>/<source>/<role>`` (no tag)."""
    return "/".join(part.strip("/") for part in (registry, namespace, source, role) if part)


def recipe_digest(*parts: str) -> str:
    """Return the sha256 of the recipe's parts (each part length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode()
        digest.update(str(len(data)).encode() + b":" + data)
    return digest.hexdigest()
