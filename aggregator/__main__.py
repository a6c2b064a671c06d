"""``python -m aggregator``: run an aggregator configured by ``FLOPS_*`` environment variables."""

from __future__ import annotations

import logging
import os
import sys

from flops_contracts.config import load_settings
from flops_contracts.errors import ConfigError


def main() -> int:
    """Entry point of the aggregator process."""
    logging.basicConfig(
        level=os.environ.get("FLOPS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    from aggregator.settings import AggregatorRole, AggregatorSettings

    try:
        settings = load_settings(AggregatorSettings)
    except ConfigError as exc:
        print(f"flops-aggregator: {exc.message}", file=sys.stderr)
        return 2
    if settings.role is AggregatorRole.CLUSTER:
        from aggregator.cluster import run_cluster_aggregator

        return run_cluster_aggregator(settings)
    from aggregator.runtime import run_aggregator

    return run_aggregator(settings)


if __name__ == "__main__":
    sys.exit(main())
