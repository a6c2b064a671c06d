"""Run buildah: argument vectors are built by pure functions, run with their output logged.

Credentials never appear on a command line: they go into a private containers auth file
(``--authfile``), written by :func:`write_auth_file` with mode 0600.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from image_builder import commands
from image_builder.containerfile import PIP_CERT_ARG

CA_MOUNT = "/run/flops/ca-bundle.pem"
"""Where the extra CA bundle is mounted during builds (not committed into the image)."""


@dataclasses.dataclass(frozen=True)
class BudOptions:
    """Options of one ``buildah bud`` run.

    Attributes
    ----------
    containerfile, context
        The Containerfile and the build context directory.
    target
        Stage to build (the role).
    manifest
        Local manifest list the images of all platforms are added to (none: ``output``).
    platforms
        One ``--platform`` each.
    ca_bundle
        Extra CA bundle mounted read-only at :data:`CA_MOUNT` and given to pip as
        ``PIP_CERT``.
    tls_verify
        Verify TLS when pulling the base image.
    authfile
        Containers auth file for registries that need credentials.
    build_args
        ``--build-arg`` values (pip's index settings).
    mounts
        ``(host directory, path in the build)`` mounted read-only (local pip indexes, wheels).
    output
        Export the target stage's files into this directory instead of adding an image to a
        manifest list (``--output type=local``).
    """

    containerfile: Path
    context: Path
    target: str
    manifest: str | None
    platforms: tuple[str, ...]
    ca_bundle: Path | None = None
    tls_verify: bool = True
    authfile: Path | None = None
    build_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    mounts: tuple[tuple[Path, str], ...] = ()
    output: Path | None = None


def bud_argv(buildah: str, options: BudOptions) -> list[str]:
    """Return the ``buildah bud`` argument vector (chroot isolation, layer cache)."""
    argv = [buildah, "bud", "--isolation", "chroot", "--layers"]
    if options.manifest is not None:
        argv += ["--manifest", options.manifest]
    if options.output is not None:
        argv += ["--output", f"type=local,dest={options.output}"]
    argv += ["--target", options.target, "-f", str(options.containerfile),
             f"--tls-verify={str(options.tls_verify).lower()}"]
    for plat in options.platforms:
        argv += ["--platform", plat]
    if options.ca_bundle is not None:
        argv += ["-v", f"{options.ca_bundle}:{CA_MOUNT}:ro",
                 "--build-arg", f"{PIP_CERT_ARG}={CA_MOUNT}"]
    for source, target in options.mounts:
        argv += ["-v", f"{source}:{target}:ro"]
    for name, value in sorted(options.build_args.items()):
        argv += ["--build-arg", f"{name}={value}"]
    if options.authfile is not None:
        argv += ["--authfile", str(options.authfile)]
    argv.append(str(options.context))
    return argv


def push_argv(buildah: str, *, manifest: str, ref: str, tls_verify: bool,
              authfile: Path | None, digestfile: Path | None = None) -> list[str]:
    """Return the ``buildah manifest push --all`` argument vector."""
    argv = [buildah, "manifest", "push", "--all", f"--tls-verify={str(tls_verify).lower()}"]
    if authfile is not None:
        argv += ["--authfile", str(authfile)]
    if digestfile is not None:
        argv += ["--digestfile", str(digestfile)]
    return [*argv, manifest, f"docker://{ref}"]


def registry_host(registry: str) -> str:
    """Return the ``host[:port]`` part of ``host[:port][/path]``."""
    return registry.split("/", 1)[0]


def auth_file_content(registry: str, username: str, password: str) -> dict[str, object]:
    """Return a containers auth file (``auth.json``) granting access to ``registry``."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"auths": {registry_host(registry): {"auth": token}}}


def write_auth_file(path: Path, content: Mapping[str, object]) -> Path:
    """Write ``content`` to ``path`` readable by the owner only; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    return path


def credentials_from_auth_file(path: Path, registry: str) -> tuple[str, str] | None:
    """Return ``(username, password)`` stored for ``registry`` in an auth file, if any."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        token = data["auths"][registry_host(registry)]["auth"]
        user, _, password = base64.b64decode(token).decode().partition(":")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return user, password


class Buildah:
    """Runs buildah commands with a timeout, output appended to one build log.

    Parameters
    ----------
    program
        The buildah executable.
    log_path
        The build log.
    timeout
        Seconds per command.
    env
        Environment of the commands (default: inherited).
    """

    def __init__(self, program: str, *, log_path: Path, timeout: float,
                 env: Mapping[str, str] | None = None) -> None:
        self.program = program
        self.log_path = log_path
        self.timeout = timeout
        self.env = env

    def run(self, argv: Sequence[str], *, what: str) -> None:
        """Run one buildah argument vector (``argv[0]`` is the program)."""
        commands.run_logged(argv, log_path=self.log_path, timeout=self.timeout, env=self.env,
                            what=what)

    def bud(self, options: BudOptions) -> None:
        """Build ``options.target`` for every platform into ``options.manifest``."""
        self.run(bud_argv(self.program, options), what=f"buildah bud ({options.target})")

    def push(self, *, manifest: str, ref: str, tls_verify: bool,
             authfile: Path | None) -> str:
        """Push a manifest list with all its images to ``ref``; return the list's digest.

        The digest is what this push wrote (buildah's ``--digestfile``), not what the tag
        names by the time anyone reads it.
        """
        with tempfile.TemporaryDirectory(prefix="flops-push-") as tmp:
            digestfile = Path(tmp) / "digest"
            self.run(push_argv(self.program, manifest=manifest, ref=ref, tls_verify=tls_verify,
                               authfile=authfile, digestfile=digestfile),
                     what=f"buildah manifest push ({ref})")
            return digestfile.read_text(encoding="utf-8").strip()

    def remove_manifest(self, manifest: str) -> None:
        """Remove a local manifest list (its images stay in the layer cache)."""
        commands.run([self.program, "manifest", "rm", manifest], timeout=60, env=self.env,
                     check=False)
