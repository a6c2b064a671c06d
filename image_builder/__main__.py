"""``python -m image_builder``: build one project environment set by ``FLOPS_*`` variables."""

from __future__ import annotations

import json
import sys

from flops_contracts.entrypoint import start_component
from flops_contracts.errors import FlopsError
from flops_contracts.events import Component
from flops_messaging import create_emitter
from image_builder.builder import build_environment
from image_builder.settings import BuilderSettings


def main() -> int:
    """Run one build; print the result as JSON; exit 0 on success, 1 on failure, 2 on bad config."""
    settings = start_component(BuilderSettings, prog="flops-image-builder")
    try:
        emitter = create_emitter(settings.events_uri, project_id=settings.project_id,
                                 component=Component.BUILDER, instance=settings.instance)
    except FlopsError as exc:
        print(f"flops-image-builder: {exc.message}", file=sys.stderr)
        return 2
    try:
        result = build_environment(settings, emitter)
    except FlopsError as exc:
        print(f"flops-image-builder: {exc.message}", file=sys.stderr)
        return 1
    finally:
        emitter.close()
    print(json.dumps(result.to_event_data(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
