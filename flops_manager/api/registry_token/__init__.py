from flops_manager.api.registry_token.resources import PATH, blp

__all__ = ["PATH", "blp"]
