"""The learner's context, for code that cannot receive it as an argument.

Repositories written for the original FLOps call ``load_dataset()`` without arguments; the
learner publishes its :class:`~learner_base.model_manager.LearnerContext` here before it calls
``set_model_data`` so that :mod:`flops_utils` can find the data server and tags. A learner
process serves one learner, so one slot is enough.
"""

from __future__ import annotations

from flops_contracts.errors import FlopsError
from learner_base.model_manager import LearnerContext

_SLOT: list[LearnerContext] = []


def publish(context: LearnerContext) -> None:
    """Make ``context`` this process's learner context."""
    _SLOT[:] = [context]


def current() -> LearnerContext:
    """Return this process's learner context.

    Raises
    ------
    FlopsError
        Outside a learner (e.g. in the aggregator or at import time).
    """
    if not _SLOT:
        raise FlopsError("no learner context: data can only be loaded by a learner, inside "
                         "ModelManager.set_model_data()")
    return _SLOT[0]
