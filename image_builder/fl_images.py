"""Target ``images``: learner and aggregator images of a user repository at one commit.

Both images are built from one dependency layer (FLOps runtime + the repository's dependencies,
FLOps' pins as constraints); each keeps only the distributions its role uses
(``image_builder.role_env``: the learner has no MLflow and no ``uv``; the user's dependencies
stay as declared; ``/opt/flops/venv/flops-packages.json`` says what went in and why). Both hold
the repository, read-only, in ``/opt/flops/repo`` (``FLOPS_REPO_DIR``), and run
``python -m learner_base`` / ``python -m aggregator`` by default. The ``completed`` event
carries ``images`` = ``{"learner": ref, "aggregator": ref}``, ``commit``, ``cache_hit``,
``timings``, ``platforms``, plus ``tag``, ``dependency_hash``, ``runtime_version`` and (when
something was built) ``log_file``.
"""

from __future__ import annotations

from flops_contracts.events import EventType
from flops_messaging import EventEmitter
from image_builder import containerfile as cf
from image_builder.builder import checkout_and_validate
from image_builder.cache import CacheLayout
from image_builder.dependencies import user_requirement_lines
from image_builder.image_pipeline import ImagePlan, build_and_push
from image_builder.image_tags import repository_slug
from image_builder.outcome import BuildStep, ImageBuildResult
from image_builder.settings import BuilderSettings
from image_builder.steps import StepTimer, run_reported

LEARNER = cf.Role(name="learner", module="learner_base", prune=True)
AGGREGATOR = cf.Role(name="aggregator", module="aggregator",
                     env={"FLOPS_LISTEN_ADDRESS": "0.0.0.0:8080"}, expose=(8080,), prune=True)


def build_images(settings: BuilderSettings, emitter: EventEmitter) -> ImageBuildResult:
    """Build (or find in the registry) the learner and aggregator images.

    Parameters
    ----------
    settings
        ``repository_url``, ``ref``, ``registry`` and the image settings.
    emitter
        Receives ``started``, ``progress`` per step (``clone``, ``validate``, ``prepare``,
        ``cache``, ``context``, ``build_learner``, ``build_aggregator``, ``push``), ``log``
        warnings, and ``completed`` or ``failed``.

    Raises
    ------
    ContractError
        If the repository violates the FLOps repository contract.
    BuildError
        If any other step fails (``.step`` names it).
    """
    result, _, total = run_reported(
        emitter, lambda steps: _build(settings, steps, emitter),
        started={"target": settings.target.value, "repository_url": settings.repository_url,
                 "ref": settings.ref},
        first_step=BuildStep.CLONE,
    )
    result.timings["total"] = total
    emitter.emit(EventType.COMPLETED, **result.to_event_data())
    return result


def _build(settings: BuilderSettings, steps: StepTimer,
           emitter: EventEmitter) -> ImageBuildResult:
    cache = CacheLayout(settings.cache_dir)
    tree, deps = checkout_and_validate(settings, cache, steps, emitter)
    plan = ImagePlan(
        roles=(LEARNER, AGGREGATOR),
        payload=tree.repo_dir,
        payload_dir=cf.REPO_DIR,
        env={"FLOPS_REPO_DIR": cf.REPO_DIR},
        labels={"org.opencontainers.image.source": settings.repository_url,
                "org.opencontainers.image.revision": tree.commit},
        user_requirements=user_requirement_lines(deps),
        requirements_source=deps.path.name,
        source_id=tree.commit,
        dependency_hash=deps.digest,
        source_slug=repository_slug(settings.repository_url),
    )
    pushed = build_and_push(settings, plan, steps, emitter)
    return ImageBuildResult(images=pushed.images, cache_hit=pushed.cache_hit,
                            timings=dict(steps.timings), platforms=pushed.platforms,
                            commit=tree.commit, details=pushed.details)
