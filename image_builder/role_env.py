"""Give one role's image only the distributions that role uses (run inside the image build).

``python -B -m image_builder.role_env ROLE --venv VENV --payload DIR --user-requirements FILE``
runs in a stage of its own (``FROM deps``), so the shared dependency layer stays one layer for
every role and platform and only this cheap step is per role. It keeps:

* the user's dependencies exactly as declared: every distribution named in
  ``user-requirements.txt`` with its whole requirement closure (markers and extras followed);
* what the user's code imports, read statically from every ``*.py`` file of the payload
  (also imports inside functions), with its closure;
* what the role's own code loads: a probe interpreter imports the role's modules
  (:data:`ROLE_PROBES`) and loads the payload as the role does (the repository's ModelManager
  class, or the MLflow model with its flavor), and every distribution that owns a loaded
  module's file is kept (not its declared closure: Flower declares ``uv`` and
  server pieces a learner never loads);
* the closure of the role's ``closed`` roots (the aggregator's MLflow, which imports lazily);
* the FLOps runtime distribution itself.

Every other distribution is removed (its RECORD's files and its metadata). A distribution of
which the probe loaded nothing but pkgutil namespace ``__init__.py`` files is not used either:
it is removed, and those one-line files stay so that the parent package still imports
(:func:`namespace_only`; MLflow's ``databricks`` namespace). Byte code stays only in the
package directories the probe loaded modules from (``image_builder.slim.drop_bytecode``):
what the role imports later compiles from source, once per process. A second probe in
the pruned environment must import everything again, or the build fails naming the module.
Under emulation a probe takes minutes, so an emulated build takes the native build's probe
(``FLOPS_NATIVE_PROBE``, which the builder reads from the native image's report) and runs
none; the native build has verified the same removals. Closures are still evaluated on the
target platform, so its markers count.
The decision is recorded in ``VENV/flops-packages.json``: each kept distribution with its
version, size and why, each removed one with its size.

The pure part (:func:`closure`, :func:`plan`) takes plain data, so it is tested without images.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.metadata as metadata
import json
import os
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from image_builder.containerfile import BUILD_PLATFORM_ARG, NATIVE_PROBE_ARG, PACKAGES_REPORT
from image_builder.slim import SlimReport, drop_bytecode, real_paths, record_files, uninstall

RUNTIME_DISTRIBUTION = "flops"
REPORT_NAME = PACKAGES_REPORT
DIRECTORY_MTIME = 315532800
"""1980-01-01: directories touched by the removal get a fixed time (same input, same layer)."""
PROBE_TIMEOUT_S = 600.0
"""Importing a role's modules under emulation takes tens of seconds; this bounds a hang."""


@dataclasses.dataclass(frozen=True)
class RoleProbe:
    """What one role's code needs.

    Attributes
    ----------
    modules
        Modules the probe imports: the role's entry points and what they import lazily at
        run time. A module whose top-level package is not installed is skipped (optional).
    closed
        Distributions kept with their whole closure (libraries that import lazily).
    payload
        What the probe loads from the payload as the role does: ``repository`` imports the
        repository's ModelManager class (the role runs the user's code), ``model`` loads the
        MLflow model as the inference server does (its flavor's libraries, MLflow's client),
        ``""`` nothing.
    opportunistic
        Distributions a library loads only because they are installed (pandas imports
        pyarrow when it can): not kept for being loaded, only when the user's dependencies
        or imports need them. The second probe proves the role imports without them.
    unused_requirements
        Requirements of kept distributions that the role never calls into, not followed:
        kept only when the user's dependencies or imports need them or the probe loads them.
    """

    modules: tuple[str, ...]
    closed: tuple[str, ...] = ()
    payload: str = "repository"
    opportunistic: tuple[str, ...] = ()
    unused_requirements: tuple[str, ...] = ()


MLFLOW_DATABRICKS = ("databricks-sdk",)
"""MLflow's client for Databricks workspaces: MLflow uses it only for ``databricks`` tracking
and registry URIs, and FLOps tracks to its own MLflow server. ``import mlflow`` (3.17) still
loads its ``databricks`` namespace package (``find_spec("databricks.agents")`` fails without
one), and nothing else of it: as a distribution loaded only through namespace packages (see
:func:`namespace_only`), it goes, and only that one-line ``databricks/__init__.py`` stays."""
HTTPX_CLI = ("pygments",)
"""httpx (imported by Flower) imports its command line's syntax highlighter, Pygments, when it
is installed, and works without it; no role runs httpx's command line."""


EVENTS = "flops_messaging.mqtt_publisher"
"""Imported lazily by every component that publishes events over MQTT."""

ROLE_PROBES: Mapping[str, RoleProbe] = {
    "learner": RoleProbe(
        modules=(EVENTS, "learner_base.__main__", "learner_base.runtime",
                 "learner_base.settings",
                 # the data reader, imported when the user's code reads its node's data
                 "learner_base.data", "flops_utils.ml_repo_building_blocks",
                 "flops_dataplane.flight_reader"),
        # scikit-learn loads pandas when it is there, and pandas pyarrow; a learner needs them
        # only if the user's code does (imports, declares, or calls ``to_pandas``/``to_arrow``)
        opportunistic=("pandas", "pyarrow"),
    ),
    "aggregator": RoleProbe(
        modules=(EVENTS, "aggregator.__main__", "aggregator.runtime", "aggregator.cluster",
                 "aggregator.tracking", "aggregator.model_saving", "aggregator.pickled_model",
                 "aggregator.experiment_kind", "flops_contracts.aggregator_settings",
                 "mlflow", "mlflow.pyfunc", "mlflow.tracking", "mlflow.entities",
                 "mlflow.exceptions", "mlflow.utils.environment", "skops.io", "cloudpickle"),
        closed=("mlflow-skinny",),
        opportunistic=("pyarrow", *HTTPX_CLI),
        unused_requirements=MLFLOW_DATABRICKS,
    ),
    "inference_server": RoleProbe(
        modules=(EVENTS, "inference_server.__main__",
                 "inference_server.runtime", "inference_server.app",
                 "inference_server.model_loader", "inference_server.scoring",
                 "inference_server.payload", "inference_server.validation",
                 "inference_server.metrics", "inference_server.settings",
                 "mlflow", "mlflow.pyfunc", "mlflow.tracking"),
        closed=("mlflow-skinny",),
        payload="model",
        opportunistic=("pyarrow",),
        unused_requirements=MLFLOW_DATABRICKS,
    ),
}
"""Roles whose images are pruned (``Role.prune``); a role not named keeps the whole venv."""


@dataclasses.dataclass(frozen=True)
class Installed:
    """One installed distribution, as the planner sees it."""

    name: str
    version: str
    requires: tuple[str, ...]
    size: int = 0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What stays and what goes: canonical name -> reason (kept) or size in bytes (removed)."""

    kept: dict[str, str]
    removed: dict[str, int]


def _requirements(texts: Iterable[str]) -> Iterator[Requirement]:
    for text in texts:
        try:
            yield Requirement(text.split(" #", 1)[0].split("\t#", 1)[0].strip())
        except InvalidRequirement:
            continue


def closure(roots: Mapping[str, str], installed: Mapping[str, Installed],
            environment: Mapping[str, str], unused: Iterable[str] = ()) -> dict[str, str]:
    """Return canonical name -> why, for ``roots`` (name -> why) and what they require.

    Requirements follow markers evaluated in ``environment`` and the extras each requirement
    asks for; names that are not installed are skipped (their marker excluded them from the
    install, or they are optional), and so are requirements named in ``unused`` (a root is
    kept whatever ``unused`` says).
    """
    not_followed = {canonicalize_name(name) for name in unused}
    # a root's own reason comes first, even when another root requires it too
    why: dict[str, str] = {canonicalize_name(name): reason for name, reason in roots.items()
                           if canonicalize_name(name) in installed}
    todo: list[tuple[str, frozenset[str], str]] = [
        (canonicalize_name(name), frozenset(), reason) for name, reason in roots.items()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras, reason = todo.pop()
        if name not in installed or (name, extras) in seen:
            continue
        seen.add((name, extras))
        why.setdefault(name, reason)
        for req in _requirements(installed[name].requires):
            if canonicalize_name(req.name) in not_followed:
                continue
            wanted = ("", *sorted(extras))
            if req.marker is not None and not any(
                    req.marker.evaluate({**environment, "extra": extra}) for extra in wanted):
                continue
            todo.append((canonicalize_name(req.name), frozenset(req.extras),
                         f"required by {installed[name].name}"))
    return why


def plan(*, installed: Mapping[str, Installed], user_requirements: Iterable[str],
         user_imports: Iterable[str], loaded: Iterable[str], closed: Iterable[str],
         environment: Mapping[str, str], opportunistic: Iterable[str] = (),
         unused_requirements: Iterable[str] = ()) -> Plan:
    """Decide which distributions one role keeps (see the module docstring).

    Parameters
    ----------
    installed
        Canonical name -> the installed distribution.
    user_requirements
        The user's requirement lines (names with specifiers, markers, extras).
    user_imports
        Distributions owning the top-level modules the user's code imports.
    loaded
        Distributions owning a module the role's probe loaded.
    closed
        Distributions kept with their closure for the role.
    opportunistic
        Loaded distributions not kept for being loaded (see :class:`RoleProbe`).
    unused_requirements
        Requirements not followed in any closure (see :class:`RoleProbe`).
    """
    env = dict(environment)
    roots: dict[str, str] = {}
    for req in _requirements(user_requirements):
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            roots.setdefault(canonicalize_name(req.name), "user requirement")
    for name in user_imports:  # FLOps' own packages (learner_base...) bring no closure
        if canonicalize_name(name) != RUNTIME_DISTRIBUTION:
            roots.setdefault(canonicalize_name(name), "imported by the user's code")
    for name in closed:
        roots.setdefault(canonicalize_name(name), "used by the role (kept with its closure)")
    kept = closure(roots, installed, env, unused_requirements)
    skipped = {canonicalize_name(name) for name in opportunistic}
    for name in loaded:
        if canonicalize_name(name) not in skipped:
            kept.setdefault(canonicalize_name(name), "loaded by the role's code")
    kept.setdefault(RUNTIME_DISTRIBUTION, "the FLOps runtime")
    removed = {name: dist.size for name, dist in sorted(installed.items()) if name not in kept}
    return Plan(kept=dict(sorted(kept.items())), removed=removed)


IMPLIED_IMPORTS: Mapping[str, str] = {"to_pandas": "pandas", "to_arrow": "pyarrow"}
"""Attribute calls that need a module the code never imports (``data.to_pandas()``,
``data.to_arrow()`` of :class:`learner_base.data.TaggedData`)."""


def imported_names(repo: Path) -> tuple[set[str], list[str]]:
    """Return the top-level module names the repository's ``*.py`` files import.

    Also returns the files that could not be parsed (their imports are unknown). Calls of
    :data:`IMPLIED_IMPORTS` attributes count as imports of their module.
    """
    names: set[str] = set()
    unreadable: list[str] = []
    for path in sorted(repo.rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(repo).parts):
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):
            unreadable.append(str(path.relative_to(repo)))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Attribute) and node.attr in IMPLIED_IMPORTS:
                names.add(IMPLIED_IMPORTS[node.attr])
    return names, unreadable


NAMESPACE_INIT_FORMS = (
    '__path__ = __import__("pkgutil").extend_path(__path__, __name__)',
    "from pkgutil import extend_path",
    "__path__ = extend_path(__path__, __name__)",
)
"""The statements of a pkgutil-style namespace package's ``__init__.py``."""


def is_namespace_init(source: str) -> bool:
    """Whether ``source`` only makes its package a pkgutil-style namespace (docstring allowed)."""
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError):
        return False
    forms = {ast.dump(ast.parse(form).body[0]) for form in NAMESPACE_INIT_FORMS}
    code = [node for node in body if not (isinstance(node, ast.Expr)
                                          and isinstance(node.value, ast.Constant))]
    return bool(code) and all(ast.dump(node) in forms for node in code)


def namespace_only(init_only: Mapping[str, Iterable[str]],
                   site_packages: Path) -> dict[str, list[str]]:
    """Distributions the probe loaded only through pkgutil namespace ``__init__.py`` files.

    ``init_only`` is the probe's answer: distribution -> the ``__init__.py`` files (relative to
    ``site_packages``) that were all it loaded of it. A distribution is returned (canonical
    name -> those files) when every one of them is a namespace ``__init__.py``: the role runs
    none of its code, but a parent package it shares must stay importable.
    """
    root = site_packages.resolve()
    found: dict[str, list[str]] = {}
    for name, entries in init_only.items():
        files = sorted(entries)
        paths = [(root / entry).resolve() for entry in files]
        if files and all(root in path.parents and path.is_file()
                         and is_namespace_init(path.read_text(encoding="utf-8",
                                                              errors="replace"))
                         for path in paths):
            found[canonicalize_name(name)] = files
    return found


def _file_size(path: Path) -> int:
    try:
        status = path.stat()
    except OSError:  # listed, but stripped or never installed
        return 0
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def _installed(site_packages: Path) -> tuple[dict[str, Installed],
                                             dict[str, metadata.Distribution]]:
    found: dict[str, Installed] = {}
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=[str(site_packages)]):
        name = canonicalize_name(dist.metadata["Name"] or "")
        if not name or name in found:
            continue
        base = Path(str(dist.locate_file("")))
        size = sum(_file_size(base / f) for f in dist.files or [])
        found[name] = Installed(name=dist.metadata["Name"], version=dist.version,
                                requires=tuple(dist.requires or ()), size=size)
        dists[name] = dist
    return found, dists


def _owners(names: Iterable[str]) -> set[str]:
    """Return the installed distributions providing the given top-level module names."""
    providers = metadata.packages_distributions()
    return {canonicalize_name(dist) for name in names
            if name not in sys.stdlib_module_names for dist in providers.get(name, ())}


PROBE_CODE = """
import importlib, json, os, sys, sysconfig
from importlib import metadata
modules, kind, payload = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
skipped = []
for name in modules:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0]:
            raise
        skipped.append(name)
if kind == "repository":
    from pathlib import Path
    from learner_base.repository import load_model_manager_class
    load_model_manager_class(Path(payload))
elif kind == "model":
    from inference_server.model_loader import load_served_model
    load_served_model(payload, tracking_uri=None)
real_dirs = {}
# slim.real_paths' rule, written out: importing it here would add FLOps' own modules (and
# packaging) to what the role is seen to load. Each directory is resolved once.
def real(path):
    head, name = os.path.split(path)
    if (found := real_dirs.get(head)) is None:
        found = real_dirs[head] = os.path.realpath(head)
    return os.path.join(found, name)
files = {}
for dist in metadata.distributions():
    base = str(dist.locate_file(""))
    for entry in dist.files or []:
        files[real(os.path.join(base, str(entry)))] = (dist.metadata["Name"], str(entry))
purelib = os.path.realpath(sysconfig.get_paths()["purelib"])
by_dist, packages = {}, set()
for m in list(sys.modules.values()):
    if not (p := getattr(m, "__file__", None)):
        continue
    if (p := real(p)) in files:
        by_dist.setdefault(files[p][0], set()).add(files[p][1])
    if p.startswith(purelib + os.sep):
        packages.add(os.path.relpath(os.path.dirname(p), purelib))
init_only = {name: sorted(entries) for name, entries in by_dist.items()
             if all(os.path.basename(entry) == "__init__.py" for entry in entries)}
packages = sorted(packages)
print(json.dumps({"loaded": sorted(by_dist), "skipped": skipped, "init_only": init_only,
                  "packages": packages}))
"""


ProbeAnswer = dict[str, Any]
"""A probe's answer (JSON): ``loaded`` and ``skipped`` (lists of distribution and module
names), ``init_only`` (distribution -> the ``__init__.py`` files that were all the probe
loaded of it) and ``packages`` (the directories, relative to site-packages, that it loaded
modules from). The last two are absent from answers of builds before they were added."""


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(n, str) for n in value)


def run_probe(python: str, probe: RoleProbe, payload: Path | None) -> ProbeAnswer:
    """Import the role's modules in a fresh interpreter; return what it loaded and skipped.

    Raises
    ------
    SystemExit
        With the probe's error output, when an import fails or it does not finish in time.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="flops-probe-") as scratch:
            # what the role writes where it runs (MLflow's default store) stays out of images
            result = subprocess.run(  # noqa: S603 - argv list, no shell
                [python, "-B", "-c", PROBE_CODE, json.dumps(list(probe.modules)),
                 probe.payload if payload is not None else "", str(payload or "")],
                capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False,
                cwd=scratch, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except subprocess.TimeoutExpired:
        raise SystemExit(f"image_builder.role_env: importing the role's modules took more "
                         f"than {PROBE_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        raise SystemExit("image_builder.role_env: importing the role's modules failed:\n"
                         + result.stderr[-4000:])
    answer: ProbeAnswer = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def emulated(environ: Mapping[str, str]) -> bool:
    """Whether this build stage runs under emulation.

    True when buildah's ``TARGETPLATFORM`` differs from the builder host's platform
    (``FLOPS_BUILD_PLATFORM``, a build argument the builder passes).
    """
    target, host = environ.get("TARGETPLATFORM", ""), environ.get(BUILD_PLATFORM_ARG, "")
    return bool(target and host and target != host)


def native_probe(environ: Mapping[str, str]) -> ProbeAnswer | None:
    """Return the native build's probe answer handed to an emulated stage, if any.

    Raises
    ------
    SystemExit
        When the value is not the probe's JSON (``loaded`` and ``skipped`` lists of names,
        optionally ``packages``, a list of directories, and ``init_only``, lists of file names
        by distribution).
    """
    text = environ.get(NATIVE_PROBE_ARG, "")
    if not text or not emulated(environ):
        return None
    try:
        answer = json.loads(text)
        lists: ProbeAnswer = {key: answer[key] for key in ("loaded", "skipped")}
        lists |= {key: answer[key] for key in ("packages",) if key in answer}
        init_only = answer.get("init_only", {})
    except (ValueError, KeyError, TypeError, AttributeError):
        lists, init_only = {}, None
    if not lists or not all(map(_names, lists.values())) or not (
            isinstance(init_only, dict) and all(map(_names, init_only.values()))):
        raise SystemExit(f"image_builder.role_env: {NATIVE_PROBE_ARG} is not a probe's "
                         "answer (JSON with 'loaded' and 'skipped' lists of names)")
    if init_only:
        lists["init_only"] = init_only
    return lists


def _fix_directory_times(venv: Path) -> None:
    for directory, _, _ in os.walk(venv):
        os.utime(directory, (DIRECTORY_MTIME, DIRECTORY_MTIME), follow_symlinks=False)


def prune(role: str, *, venv: Path, site_packages: Path, payload: Path | None,
          user_requirements: list[str]) -> str:
    """Remove from ``venv`` what ``role`` does not use; write the report beside it.

    Returns a one-line summary for the build log.
    """
    probe = ROLE_PROBES[role]
    python = str(venv / "bin" / "python")
    handed = native_probe(os.environ)
    before = handed if handed is not None else run_probe(python, probe, payload)
    installed, dists = _installed(site_packages)
    names, unreadable = imported_names(payload) if payload is not None else (set(), [])
    namespaces = namespace_only(before.get("init_only", {}), site_packages)
    decision = plan(installed=installed, user_requirements=user_requirements,
                    user_imports=_owners(names),
                    loaded=[n for n in before["loaded"] if canonicalize_name(n) not in namespaces],
                    closed=probe.closed, opportunistic=probe.opportunistic,
                    unused_requirements=probe.unused_requirements,
                    environment={k: str(v) for k, v in default_environment().items()})
    report = SlimReport()
    # a file a kept distribution lists too stays (the full ``mlflow`` and ``mlflow-skinny``
    # install the same package), and so do the namespace files of a distribution going
    shared = {file for name in decision.kept if name in dists
              for file in record_files(dists[name])}
    shared.update(real_paths(site_packages / entry for entry in chain(*namespaces.values())))
    for name in decision.removed:
        uninstall(dists[name], venv, report, keep=shared)
    bytecode = SlimReport()
    if "packages" in before:  # a handed answer of an older build does not say
        drop_bytecode(site_packages, venv, before["packages"], bytecode)
    # fails the build if a removal broke an import; under emulation (minutes per probe) the
    # native platform's build of the same packages has verified the same removals
    verified = not emulated(os.environ)
    after = run_probe(python, probe, payload) if verified else before
    _fix_directory_times(venv)
    summary: dict[str, object] = {
        "role": role,
        "kept": [{"name": installed[n].name, "version": installed[n].version, "why": why,
                  "bytes": installed[n].size} for n, why in decision.kept.items()],
        "removed": [{"name": installed[n].name, "version": installed[n].version,
                     "bytes": size, "why": f"not used by the {role}",
                     **({"namespace_files_kept": namespaces[n]} if n in namespaces else {})}
                    for n, size in decision.removed.items()],
        "bytes_removed": report.bytes_freed,
        "bytecode_removed": {"bytes": bytecode.bytes_freed,
                             "directories": len(bytecode.removed)},
        "verified": verified,
        "probed": "natively, handed to this emulated build" if handed is not None
                  else "in this build",
        "probe": before,
        "skipped_modules": after["skipped"],
        "unparsed_files": unreadable,
    }
    (venv / REPORT_NAME).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return (f"image_builder.role_env: the {role} keeps {len(decision.kept)} distributions, "
            f"removed {len(decision.removed)} ({report.bytes_freed / 2**20:.1f} MiB) and the "
            f"byte code of {len(bytecode.removed)} packages it loads nothing from "
            f"({bytecode.bytes_freed / 2**20:.1f} MiB): "
            + ", ".join(installed[n].name for n in decision.removed))


def main(argv: list[str] | None = None) -> int:
    """``python -B -m image_builder.role_env ROLE --venv VENV [--payload DIR] ...``."""
    parser = argparse.ArgumentParser(prog="python -m image_builder.role_env",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=sorted(ROLE_PROBES))
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix))
    parser.add_argument("--payload", type=Path, default=None,
                        help="the user's repository or the model directory")
    parser.add_argument("--user-requirements", type=Path, default=None)
    args = parser.parse_args(argv)
    venv: Path = args.venv
    site_packages = Path(sysconfig.get_paths(vars={"base": str(venv),
                                                   "platbase": str(venv)})["purelib"])
    lines = (args.user_requirements.read_text(encoding="utf-8").splitlines()
             if args.user_requirements is not None else [])
    print(prune(args.role, venv=venv, site_packages=site_packages, payload=args.payload,
                user_requirements=[line for line in lines
                                   if line.strip() and not line.lstrip().startswith("#")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
