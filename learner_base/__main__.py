"""``python -m learner_base``: run a learner configured by ``FLOPS_*`` environment variables."""

from __future__ import annotations

from flops_contracts.entrypoint import exit_process, start_component


def main() -> int:
    """Entry point of the learner process."""
    from learner_base.runtime import run_learner
    from learner_base.settings import LearnerSettings

    return run_learner(start_component(LearnerSettings, prog="flops-learner"))


if __name__ == "__main__":
    exit_process(main())  # everything is written: skip the interpreter's teardown
