"""The older name of :func:`flops_utils.ml_repo_building_blocks.load_dataset`."""

from flops_utils.ml_repo_building_blocks import load_dataset as load_ml_data

__all__ = ["load_ml_data"]
