"""Compatibility with repositories written for the original FLOps (oakestra/addon-FLOps).

Such repositories import ``flops_utils.ml_repo_templates`` (:class:`ModelManagerTemplate`,
:class:`DataManagerTemplate`) and ``flops_utils.ml_repo_building_blocks.load_dataset``. These
names are provided here, backed by FLOps' data plane; the learner runtime calls the templates'
no-argument methods (:mod:`learner_base.legacy_manager`).
"""

from flops_utils.ml_repo_templates import DataManagerTemplate, ModelManagerTemplate

__all__ = ["DataManagerTemplate", "ModelManagerTemplate"]
