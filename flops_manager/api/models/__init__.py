from flops_manager.api.models.resources import blp

__all__ = ["blp"]
