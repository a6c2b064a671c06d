from flops_manager.api.health.resources import blp

__all__ = ["blp"]
