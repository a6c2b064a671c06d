"""The FLOps learner runtime and the repository contract users implement.

Users subclass :class:`ModelManager` in their repository's ``model_manager.py``.
"""

from learner_base.model_manager import LearnerContext, ModelManager, Parameters, RoundConfig

__all__ = ["LearnerContext", "ModelManager", "Parameters", "RoundConfig"]
