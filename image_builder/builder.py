"""Build a project's Python environment: clone, validate, env, smoke; every step is an event."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flops_contracts.errors import ContractError
from flops_contracts.events import EventType
from flops_contracts.telemetry import disable_telemetry
from flops_messaging import EventEmitter
from image_builder import commands
from image_builder.cache import CacheLayout
from image_builder.dependencies import DependencySpec, read_dependencies
from image_builder.environment import ProjectEnv, ensure_project_env
from image_builder.git_checkout import Checkout, checkout
from image_builder.outcome import BuildError, BuildResult, BuildStep
from image_builder.runtime_layer import ensure_runtime
from image_builder.settings import BuilderSettings
from image_builder.smoke import CONTRACT_EXIT
from image_builder.sources import parse_source
from image_builder.steps import StepTimer, run_reported
from image_builder.toolchain import find_tool
from image_builder.user_paths import repository_paths
from learner_base.repository import MODEL_MANAGER_CLASS, MODEL_MANAGER_FILE

logger = logging.getLogger(__name__)

SMOKE_SCRIPT = Path(__file__).with_name("smoke.py")


_Steps = StepTimer
"""Former name of :class:`image_builder.steps.StepTimer`."""


def build_environment(settings: BuilderSettings, emitter: EventEmitter) -> BuildResult:
    """Build (or reuse) the environment of ``settings.repository_url`` at ``settings.ref``.

    Parameters
    ----------
    settings
        What to build and where.
    emitter
        Receives ``started``, ``progress`` (per step, with seconds), ``log``, and ``completed``
        or ``failed`` (with ``step``, ``message`` and, for tool failures, ``output_tail``).

    Returns
    -------
    BuildResult
        The environment, the commit and the timings.

    Raises
    ------
    ContractError
        If the repository violates the FLOps repository contract.
    BuildError
        If any other step fails (``.step`` names it).
    """
    result, _, total = run_reported(
        emitter, lambda steps: _build(settings, steps, emitter),
        started={"repository_url": settings.repository_url, "ref": settings.ref},
        first_step=BuildStep.CLONE,
    )
    result.timings["total"] = total
    emitter.emit(EventType.COMPLETED, **result.to_event_data())
    return result


def checkout_and_validate(
    settings: BuilderSettings, cache: CacheLayout, steps: StepTimer, emitter: EventEmitter
) -> tuple[Checkout, DependencySpec]:
    """The first two steps of every target: clone at the resolved commit, check the contract."""
    with steps.step(BuildStep.CLONE) as info:
        tree = clone_source(settings, cache)
        info.update(commit=tree.commit, ref=tree.resolved_ref, reused=tree.reused)
    with steps.step(BuildStep.VALIDATE) as info, repository_paths(tree.repo_dir):
        deps = validate_static(tree.repo_dir)
        info.update(dependency_file=deps.path.name, dependency_hash=deps.digest)
        if deps.skipped:
            emitter.emit(EventType.LOG, step="validate", level="warning",
                         message=f"{deps.path.name}: skipped entries pip cannot install: "
                                 + ", ".join(deps.skipped), skipped=list(deps.skipped))
    return tree, deps


def _build(settings: BuilderSettings, steps: StepTimer, emitter: EventEmitter) -> BuildResult:
    cache = CacheLayout(settings.cache_dir)
    tree, deps = checkout_and_validate(settings, cache, steps, emitter)
    with steps.step(BuildStep.ENV) as info, repository_paths(tree.repo_dir):
        env = _environment(settings, cache, tree, deps, info)
        for note in env.notes:
            emitter.emit(EventType.LOG, step=str(BuildStep.ENV), level="warning", message=note)
    with steps.step(BuildStep.SMOKE) as info, repository_paths(tree.repo_dir):
        info.update(cached_smoke(env.venv.parent / SMOKE_REPORT, env.cache_hit,
                                 lambda: run_smoke(env.python, tree.repo_dir,
                                                   timeout=settings.smoke_timeout_s)))
    return BuildResult(
        env_dir=env.venv, python=env.python, commit=tree.commit, repo_dir=tree.repo_dir,
        cache_hit=env.cache_hit, timings=dict(steps.timings), dependency_hash=deps.digest,
        cache_key=env.cache_key,
    )


def clone_source(settings: BuilderSettings, cache: CacheLayout) -> Checkout:
    """Check out ``settings.repository_url`` at ``settings.ref`` into the cache."""
    source = parse_source(settings.repository_url, allow_local=settings.allow_local)
    return checkout(source, settings.ref, cache=cache, work_dir=settings.scratch_dir(),
                    timeout=settings.git_timeout_s)


def validate_static(repo_dir: Path) -> DependencySpec:
    """Check the parts of the repository contract that need no environment.

    Raises
    ------
    ContractError
        If ``model_manager.py`` or the dependency file is missing or unreadable.
    """
    if not (repo_dir / MODEL_MANAGER_FILE).is_file():
        raise ContractError(
            f"{repo_dir}: no {MODEL_MANAGER_FILE} at the repository root; FLOps needs a "
            f"{MODEL_MANAGER_FILE} defining class {MODEL_MANAGER_CLASS}"
        )
    return read_dependencies(repo_dir)


def _environment(settings: BuilderSettings, cache: CacheLayout, tree: Checkout,
                 deps: DependencySpec, info: dict[str, Any]) -> ProjectEnv:
    env = dict(os.environ)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    if settings.uv_cache_dir is not None:
        env["UV_CACHE_DIR"] = str(settings.uv_cache_dir.expanduser())
    tool = find_tool(uv=settings.uv, use_uv=settings.use_uv, env=env)
    runtime, runtime_hit = ensure_runtime(
        cache=cache, tool=tool, source=settings.runtime_source, python=settings.python,
        system_site_packages=settings.system_site_packages, timeout=settings.install_timeout_s,
    )
    project = ensure_project_env(
        cache=cache, tool=tool, runtime=runtime, deps=deps, commit=tree.commit,
        python=settings.python, timeout=settings.install_timeout_s,
    )
    info.update(tool=tool.name, runtime_key=runtime.key, runtime_cache_hit=runtime_hit,
                cache_key=project.cache_key, cache_hit=project.cache_hit,
                env_dir=str(project.venv))
    return project


SMOKE_REPORT = "smoke.json"
"""The smoke check's report, kept beside a cached environment."""


def cached_smoke(
    report: Path, cache_hit: bool, run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Return the smoke report of a cached environment, or run the check and keep its report.

    An environment is cached per (commit, dependency hash, runtime version): the same inputs
    passed the check before, so a cache hit with a kept report skips it.
    """
    if cache_hit and report.is_file():
        try:
            kept: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
            return {**kept, "cached": True}
        except ValueError:
            pass  # damaged: check again
    result = run()
    report.write_text(json.dumps(result), encoding="utf-8")
    return {**result, "cached": False}


def run_smoke(python: Path, repo_dir: Path, *, timeout: float) -> dict[str, Any]:
    """Instantiate the ModelManager inside the built environment and read its parameters.

    Returns
    -------
    dict
        ``{"class": name, "parameters": [[shape, dtype], ...]}``.

    Raises
    ------
    ContractError
        With the contract's message if the repository violates it.
    BuildError
        If the check crashes or times out.
    """
    env = disable_telemetry(dict(os.environ))
    out = commands.run([str(python), "-I", str(SMOKE_SCRIPT), str(repo_dir)], timeout=timeout,
                       cwd=repo_dir, env=env, check=False, what="smoke check")
    if out.returncode == CONTRACT_EXIT:
        raise ContractError(out.stderr.strip() or "repository contract violated")
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise BuildError(f"smoke check failed with exit status {out.returncode}",
                         details={"output_tail": out.tail()})
    try:
        report = json.loads(lines[-1])
    except ValueError:
        raise BuildError("smoke check printed no report",
                         details={"output_tail": out.tail()}) from None
    return {"model_manager": report.get("class"), "parameters": report.get("parameters")}
