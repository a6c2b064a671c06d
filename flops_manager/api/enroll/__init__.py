from flops_manager.api.enroll.resources import blp

__all__ = ["blp"]
