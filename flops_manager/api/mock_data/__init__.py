from flops_manager.api.mock_data.resources import blp

__all__ = ["blp"]
