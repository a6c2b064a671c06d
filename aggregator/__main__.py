"""``python -m aggregator``: run an aggregator configured by ``FLOPS_*`` environment variables."""

from __future__ import annotations

from flops_contracts.entrypoint import exit_process, start_component


def main() -> int:
    """Entry point of the aggregator process."""
    from flops_contracts.aggregator_settings import AggregatorRole, AggregatorSettings

    settings = start_component(AggregatorSettings, prog="flops-aggregator")
    if settings.role is AggregatorRole.CLUSTER:
        from aggregator.cluster import run_cluster_aggregator

        return run_cluster_aggregator(settings)
    from aggregator.runtime import run_aggregator

    return run_aggregator(settings)


if __name__ == "__main__":
    exit_process(main())  # everything is written: skip the interpreter's teardown
