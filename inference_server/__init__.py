"""Serve one FLOps-trained MLflow model over HTTP (MLflow's scoring protocol plus metadata).

Run ``python -m inference_server`` with ``FLOPS_MODEL_URI`` set; see :mod:`.settings`.
"""

from inference_server.app import AppContext, create_app
from inference_server.errors import RequestError
from inference_server.settings import InferenceSettings

__all__ = ["AppContext", "InferenceSettings", "RequestError", "create_app"]
