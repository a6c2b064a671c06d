"""Target ``model_image``: the FLOps inference server plus one trained model.

The model is downloaded from MLflow (``FLOPS_MODEL_URI``, ``FLOPS_TRACKING_URI``; a local model
directory also works) and copied read-only to ``/opt/flops/model``; the image runs
``python -m inference_server`` with ``FLOPS_MODEL_URI=/opt/flops/model`` and
``FLOPS_LISTEN_ADDRESS=0.0.0.0:8080``. The model's ``requirements.txt`` is merged with FLOps'
pins (``mlflow`` is served by ``mlflow-skinny``); the image keeps only what the inference server
and the model load (``image_builder.role_env``: no Flower, no data plane). The tag's first
component is a digest of the model's files, so the same model gives the same tag whatever URI
named it. ``completed`` carries
``images`` = ``{"inference_server": ref}``, ``model_digest``, ``cache_hit``, ``timings``,
``platforms``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flops_contracts.events import EventType
from flops_messaging import EventEmitter
from image_builder import containerfile as cf
from image_builder.image_pipeline import ImagePlan, build_and_push
from image_builder.image_tags import model_slug
from image_builder.outcome import BuildError, BuildStep, ImageBuildResult
from image_builder.settings import BuilderSettings
from image_builder.steps import StepTimer, run_reported

INFERENCE_PORT = 8080
INFERENCE_SERVER = cf.Role(
    name="inference_server", module="inference_server",
    env={"FLOPS_MODEL_URI": cf.MODEL_DIR, "FLOPS_LISTEN_ADDRESS": f"0.0.0.0:{INFERENCE_PORT}"},
    expose=(INFERENCE_PORT,), prune=True,
)
SERVER_ROOTS = ("starlette", "uvicorn", "prometheus-client")
"""Libraries of the inference server beyond the runtime's roots (versions from the pins)."""


def directory_digest(root: Path) -> str:
    """Return the sha256 over the relative paths and contents of every file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@contextmanager
def downloaded_model(settings: BuilderSettings) -> Iterator[Path]:
    """Yield a local directory holding the model named by ``settings.model_uri``.

    Raises
    ------
    BuildError
        If the model cannot be downloaded or is not an MLflow model (no ``MLmodel`` file).
    """
    uri = settings.model_uri or ""
    local = Path(uri.removeprefix("file://")).expanduser()
    if "://" not in uri.replace("file://", "") and ":/" not in uri and local.is_dir():
        _check_model(local, uri)
        yield local
        return
    import mlflow.artifacts  # heavy; only this target needs it

    with tempfile.TemporaryDirectory(prefix="flops-model-") as tmp:
        try:
            path = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=settings.tracking_uri))
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types
            raise BuildError(f"cannot download model {uri}: {type(exc).__name__}: {exc}") \
                from None
        _check_model(path, uri)
        yield path


def _check_model(path: Path, uri: str) -> None:
    if not (path / "MLmodel").is_file():
        raise BuildError(f"{uri} is not an MLflow model (no MLmodel file in {path})")


def build_model_image(settings: BuilderSettings, emitter: EventEmitter) -> ImageBuildResult:
    """Build (or find in the registry) the inference-server image of one model.

    Raises
    ------
    BuildError
        If downloading, building or pushing fails (``.step`` names the step).
    """
    result, _, total = run_reported(
        emitter, lambda steps: _build(settings, steps, emitter),
        started={"target": settings.target.value, "model_uri": settings.model_uri},
        first_step=BuildStep.DOWNLOAD,
    )
    result.timings["total"] = total
    emitter.emit(EventType.COMPLETED, **result.to_event_data())
    return result


def _build(settings: BuilderSettings, steps: StepTimer,
           emitter: EventEmitter) -> ImageBuildResult:
    scratch = settings.scratch_dir()
    scratch.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix="model-", dir=scratch))
    try:
        with steps.step(BuildStep.DOWNLOAD) as info, downloaded_model(settings) as model_dir:
            shutil.copytree(model_dir, staged / "model", symlinks=False)
            digest = directory_digest(staged / "model")
            requirements = staged / "model" / "requirements.txt"
            lines = (tuple(requirements.read_text(encoding="utf-8").splitlines())
                     if requirements.is_file() else ())
            info.update(model_digest=digest)
        plan = ImagePlan(
            roles=(INFERENCE_SERVER,), payload=staged / "model", payload_dir=cf.MODEL_DIR,
            env={}, labels={"io.flops.model-uri": settings.model_uri or "",
                            "io.flops.model-digest": digest},
            user_requirements=lines, requirements_source="model requirements.txt",
            source_id=digest,
            dependency_hash=hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            source_slug=model_slug(settings.model_uri or "", settings.model_name),
            extra_roots=SERVER_ROOTS,
        )
        pushed = build_and_push(settings, plan, steps, emitter)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return ImageBuildResult(images=pushed.images, cache_hit=pushed.cache_hit,
                            timings=dict(steps.timings), platforms=pushed.platforms,
                            details={**pushed.details, "model_digest": digest,
                                     "model_uri": settings.model_uri})
