"""Render Containerfiles for FLOps images (pure functions, no I/O).

One multi-stage Containerfile serves all roles of a build::

    deps      FROM base: a venv with the dependencies (FLOps' pins as constraints), then the
              FLOps runtime wheel (--no-deps); pip runs without a cache, with the build's CA
              bundle (PIP_CERT) mounted by the builder, never committed. Then
              ``image_builder.slim`` strips the venv (pip/setuptools/wheel, test suites,
              headers, sources, stubs; see that module).
    <role>-env  FROM deps, for a role that is pruned (``Role.prune``): ``image_builder.role_env``
              removes the distributions the role does not use (the user's dependencies stay
              as declared) and records what went in and why in ``VENV/flops-packages.json``.
              Only this cheap step is per role; the dependency layer is shared. Under
              emulation it takes what the role loads from the native build's probe
              (``FLOPS_NATIVE_PROBE``) instead of importing everything under qemu.
    <role>-decision  FROM scratch: only that report, which the builder exports from the
              native platform's build (``--output``) to hand its probe to emulated ones.
    runtime-root  FROM base: tini, a non-root user, then (``Recipe.slim_runtime``) the Debian
              packages a Python runtime never uses are purged (:data:`RUNTIME_PURGE`).
    runtime   FROM scratch: that root file system as one layer (a purge in a layer above the
              base would shrink nothing), ``python`` = the venv's interpreter, tini as PID 1
              (forwards SIGTERM). Without ``slim_runtime`` it is ``runtime-root`` itself.
    <role>    FROM runtime: the role's venv (from ``<role>-env``, or ``deps`` unpruned), then
              the payload (user repository or model) read-only in its own directory (after the
              venv: a code change leaves the venv layer as it was), labels and the default
              command of the role (learner, aggregator, inference_server).

The build context the builder prepares next to the Containerfile holds ``deps/requirements.txt``,
``deps/constraints.txt``, ``deps/user-requirements.txt`` (the user's lines alone),
``wheel/<the FLOps wheel>`` and ``payload/`` (repository or model).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from flops_contracts.telemetry import TELEMETRY_OFF

VENV = "/opt/flops/venv"
HOME = "/home/flops"
USER = "flops"
UID = 10001
TINI = "/usr/bin/tini"
REPO_DIR = "/opt/flops/repo"
MODEL_DIR = "/opt/flops/model"
PIP_CERT_ARG = "PIP_CERT"
RUNTIME_PURGE = (
    # the package manager's front end and what only it (or its maintainer scripts) uses
    "apt", "libapt-pkg6.0", "debconf", "perl-base", "gpgv",
    "debian-archive-keyring", "libgnutls30", "libp11-kit0", "libtasn1-6", "libnettle8",
    "libhogweed6", "libidn2-0", "libunistring2", "libgcrypt20", "libgpg-error0", "libxxhash0",
    "libseccomp2", "libsystemd0", "libudev1",
    # account tools, once the image's user exists
    "passwd", "adduser", "libsemanage2", "libsemanage-common", "libsepol2",
    # file systems, mounts and disks
    "e2fsprogs", "libext2fs2", "libss2", "logsave", "util-linux", "mount", "bsdutils",
    "libfdisk1",
    # ensurepip's wheels (the venv is made in the deps stage) and diff
    "python3-pip-whl", "python3-setuptools-whl", "diffutils",
)
"""Debian packages purged from the runtime's root file system when it has them (about 40 MB
of the 133 MB Debian base). What stays: dpkg and its database (what an SBOM scanner reads),
coreutils, bash, tar, grep, sed, findutils, login, tzdata, CA certificates, Python and every
library the remaining programs and PAM modules link (libgmp, libcom-err, libdb...)."""


@dataclasses.dataclass(frozen=True)
class Role:
    """One image built from the shared stages.

    Attributes
    ----------
    name
        Stage name and role (``learner``); must be a lower-case identifier.
    module
        Python module the image runs by default (``python -m <module>``).
    env
        Role-specific environment (defaults the orchestrator may override).
    expose
        Ports the role listens on by default.
    prune
        Keep only the distributions the role uses (see ``image_builder.role_env``, which
        must know the role); otherwise the role gets the whole dependency set.
    """

    name: str
    module: str
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    expose: tuple[int, ...] = ()
    prune: bool = False


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a Containerfile depends on.

    Attributes
    ----------
    base_image
        Image both stages start from.
    python
        Interpreter of the base image that creates the venv.
    wheel_name
        File name of the FLOps runtime wheel in ``wheel/``.
    payload_dir
        Where the payload goes in the image (``REPO_DIR`` or ``MODEL_DIR``).
    env
        Environment of every role (e.g. ``FLOPS_REPO_DIR``).
    labels
        OCI labels of every role.
    roles
        The images to build.
    install_tini
        Install tini with apt when the base image lacks it.
    pip_args
        Build arguments pip reads in the deps stage (``PIP_INDEX_URL``...; the builder host's
        pip configuration, see ``image_builder.pip_config``).
    """

    base_image: str
    python: str
    wheel_name: str
    payload_dir: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    roles: tuple[Role, ...]
    install_tini: bool = True
    pip_args: tuple[str, ...] = ()
    slim_runtime: bool = True


def _json(value: object) -> str:
    return json.dumps(value)


def _env_line(env: Mapping[str, str]) -> str:
    pairs = " \\\n    ".join(f"{key}={_json(value)}" for key, value in sorted(env.items()))
    return f"ENV {pairs}"


def _label_line(labels: Mapping[str, str]) -> str:
    pairs = " \\\n      ".join(f"{_json(k)}={_json(v)}" for k, v in sorted(labels.items()))
    return f"LABEL {pairs}"


def _deps_stage(recipe: Recipe) -> list[str]:
    pip = f"{VENV}/bin/pip"
    return [
        f"FROM {recipe.base_image} AS deps",
        *(f"ARG {name}" for name in (PIP_CERT_ARG, *recipe.pip_args)),
        _env_line({
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_CACHE_DIR": "1",
            "PIP_NO_INPUT": "1",
            "PIP_ROOT_USER_ACTION": "ignore",
        }),
        f"RUN {recipe.python} -m venv {VENV}",
        "COPY deps/requirements.txt deps/constraints.txt /opt/flops/build/",
        f"RUN {pip} install -r /opt/flops/build/requirements.txt"
        " -c /opt/flops/build/constraints.txt",
        f"COPY wheel/{recipe.wheel_name} /opt/flops/build/",
        f"RUN {pip} install --no-deps /opt/flops/build/{recipe.wheel_name}",
        # Strip what the runtime never uses: pip/setuptools/wheel, test suites, headers,
        # sources and stubs (image_builder.slim comes with the FLOps wheel just installed).
        f"RUN {VENV}/bin/python -B -m image_builder.slim {VENV}",
    ]


PROBE_PAYLOAD = "/opt/flops/build/payload"
BUILD_PLATFORM_ARG = "FLOPS_BUILD_PLATFORM"
"""The builder host's platform; with buildah's ``TARGETPLATFORM`` it tells ``role_env`` that
a stage runs under emulation (where it skips its second, verifying probe)."""
NATIVE_PROBE_ARG = "FLOPS_NATIVE_PROBE"
"""JSON of what the role's probe loaded in the native platform's build; an emulated
``role_env`` decides from it rather than importing the role's modules under qemu (minutes)."""
PACKAGES_REPORT = "flops-packages.json"
"""``role_env``'s report in the venv: what the role keeps and why, what it lost."""


def decision_stage(role: str) -> str:
    """Name of the stage that holds only ``role``'s package report (see the module doc)."""
    return f"{role}-decision"


def _role_env_stage(role: Role) -> list[str]:
    return [
        f"FROM deps AS {role.name}-env",
        "ARG TARGETPLATFORM",
        f"ARG {BUILD_PLATFORM_ARG}",
        f"ARG {NATIVE_PROBE_ARG}",
        "COPY deps/user-requirements.txt /opt/flops/build/",
        f"COPY payload/ {PROBE_PAYLOAD}/",
        f"RUN {VENV}/bin/python -B -m image_builder.role_env {role.name} --venv {VENV} "
        f"--payload {PROBE_PAYLOAD} --user-requirements /opt/flops/build/user-requirements.txt",
        "",
        f"FROM scratch AS {decision_stage(role.name)}",
        f"COPY --from={role.name}-env {VENV}/{PACKAGES_REPORT} /{PACKAGES_REPORT}",
    ]


def purge_command(packages: tuple[str, ...] = RUNTIME_PURGE) -> str:
    """The ``RUN`` line purging those of ``packages`` that are installed (none without dpkg).

    ``--force-depends``: what depends on them is purged too or is never run in a container;
    ``--force-remove-essential``: perl-base and util-linux are essential to a Debian system,
    not to a Python runtime.
    """
    names = " ".join(packages)
    return ("RUN if command -v dpkg-query >/dev/null; then "
            f"installed=$(dpkg-query -W -f '${{db:Status-Abbrev}} ${{Package}}\\n' {names} "
            "2>/dev/null | awk '$1 == \"ii\" {print $2}'); "
            '[ -z "$installed" ] || dpkg --purge --force-depends --force-remove-essential '
            "$installed >/dev/null; fi")


def _runtime_stage(recipe: Recipe) -> list[str]:
    tini = (
        f"RUN test -x {TINI} || (apt-get update -q && apt-get install -y -q "
        "--no-install-recommends tini && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin)"
        if recipe.install_tini else f"RUN test -x {TINI}"
    )
    env = {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": VENV,
        "HOME": HOME,
        "PYTHONUNBUFFERED": "1",
        "FLWR_HOME": f"{HOME}/.flwr",
        **TELEMETRY_OFF,
        "MLFLOW_ENV_ROOT": f"{HOME}/.mlflow-envs",
        **recipe.env,
    }
    root = [
        f"FROM {recipe.base_image} AS {'runtime-root' if recipe.slim_runtime else 'runtime'}",
        tini,
        f"RUN groupadd --gid {UID} {USER} && useradd --uid {UID} --gid {UID} --create-home "
        f"--home-dir {HOME} --shell /usr/sbin/nologin {USER}",
    ]
    if recipe.slim_runtime:
        # a scratch image starts without the base's configuration: LANG is set again
        root += [purge_command(), "", "FROM scratch AS runtime",
                 "COPY --from=runtime-root / /"]
        env = {"LANG": "C.UTF-8", **env}
    return [
        *root,
        _env_line(env),
        f"WORKDIR {HOME}",
        f"USER {UID}:{UID}",
        f"ENTRYPOINT [{_json(TINI)}, \"--\"]",
    ]


def _role_stage(role: Role, recipe: Recipe) -> list[str]:
    lines = [f"FROM runtime AS {role.name}",
             f"COPY --from={role.name + '-env' if role.prune else 'deps'} {VENV} {VENV}",
             f"COPY payload/ {recipe.payload_dir}/"]
    if role.env:
        lines.append(_env_line(role.env))
    lines.append(_label_line({**recipe.labels, "io.flops.role": role.name}))
    lines += [f"EXPOSE {port}" for port in role.expose]
    lines.append(f"CMD {_json(['python', '-m', role.module])}")
    return lines


def render_containerfile(recipe: Recipe) -> str:
    """Return the Containerfile text for ``recipe`` (stable: same recipe, same text).

    Raises
    ------
    ValueError
        If there is no role, or a role name is not a lower-case identifier.
    """
    if not recipe.roles:
        raise ValueError("a recipe needs at least one role")
    for role in recipe.roles:
        if not role.name.replace("_", "").isalnum() or not role.name.islower():
            raise ValueError(f"role name {role.name!r} must be a lower-case identifier")
    blocks = [
        ["# Rendered by FLOps image_builder; one stage per role below the shared ones."],
        _deps_stage(recipe),
        *(_role_env_stage(role) for role in recipe.roles if role.prune),
        _runtime_stage(recipe),
        *(_role_stage(role, recipe) for role in recipe.roles),
    ]
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"
