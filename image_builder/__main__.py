"""``python -m image_builder``: run one build set by ``FLOPS_*`` variables.

``FLOPS_TARGET`` picks what is built: ``environment`` (default; a virtual environment for the
local backend), ``images`` (learner + aggregator images) or ``model_image`` (inference server +
one trained model). The result is printed as JSON (the ``completed`` event's data).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from flops_contracts.entrypoint import report_config_error, start_component
from flops_contracts.errors import FlopsError
from flops_contracts.events import Component
from flops_messaging import EventEmitter, create_emitter
from image_builder.settings import BuilderSettings, BuildTargetName


def _runner(target: BuildTargetName) -> Callable[[BuilderSettings, EventEmitter], Any]:
    """Return the build function of ``target`` (imported lazily)."""
    if target is BuildTargetName.IMAGES:
        from image_builder.fl_images import build_images

        return build_images
    if target is BuildTargetName.MODEL_IMAGE:
        from image_builder.model_image import build_model_image

        return build_model_image
    from image_builder.builder import build_environment

    return build_environment


def main() -> int:
    """Run one build; print the result as JSON; exit 0 on success, 1 on failure, 2 on bad config."""
    settings = start_component(BuilderSettings, prog="flops-image-builder")
    try:
        emitter = create_emitter(settings.events_uri, project_id=settings.project_id,
                                 component=Component.BUILDER, instance=settings.instance)
    except FlopsError as exc:
        return report_config_error("flops-image-builder", exc.message)
    try:
        result = _runner(settings.target)(settings, emitter)
    except FlopsError as exc:
        print(f"flops-image-builder: {exc.message}", file=sys.stderr)
        return 1
    finally:
        emitter.close()
    print(json.dumps(result.to_event_data(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
