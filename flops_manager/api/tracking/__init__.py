from flops_manager.api.tracking.resources import blp

__all__ = ["blp"]
