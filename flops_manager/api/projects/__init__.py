from flops_manager.api.projects.resources import blp

__all__ = ["blp"]
