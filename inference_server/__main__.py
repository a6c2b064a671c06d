"""``python -m inference_server``: serve one MLflow model configured by ``FLOPS_*`` variables."""

from __future__ import annotations

import sys

from flops_contracts.entrypoint import report_config_error, start_component
from flops_contracts.errors import FlopsError
from flops_contracts.events import Component


def main() -> int:
    """Run the server; exit 0 after SIGTERM, 41/42/49 on failure, 2 on bad configuration."""
    from flops_messaging import create_emitter
    from inference_server.runtime import run_server
    from inference_server.settings import InferenceSettings

    settings = start_component(InferenceSettings, prog="flops-inference-server")
    try:
        emitter = create_emitter(settings.events_uri, project_id=settings.project_id,
                                 component=Component.INFERENCE_SERVER,
                                 instance=settings.instance)
    except FlopsError as exc:
        return report_config_error("flops-inference-server", exc.message)
    try:
        return run_server(settings, emitter)
    finally:
        emitter.close()


if __name__ == "__main__":
    sys.exit(main())
