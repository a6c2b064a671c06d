"""``python -m learner_base``: run a learner configured by ``FLOPS_*`` environment variables."""

from __future__ import annotations

import logging
import os
import sys

from flops_contracts.config import load_settings
from flops_contracts.errors import ConfigError


def main() -> int:
    """Entry point of the learner process."""
    logging.basicConfig(
        level=os.environ.get("FLOPS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    from learner_base.runtime import run_learner
    from learner_base.settings import LearnerSettings

    try:
        settings = load_settings(LearnerSettings)
    except ConfigError as exc:
        print(f"flops-learner: {exc.message}", file=sys.stderr)
        return 2
    return run_learner(settings)


if __name__ == "__main__":
    sys.exit(main())
