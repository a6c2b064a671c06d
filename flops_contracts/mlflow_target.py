"""Point MLflow's process-wide URIs at one server for a block of code, then put them back.

MLflow's fluent API (``mlflow.start_run``, ``log_model``, ``pyfunc.load_model("models:/...")``)
reads a process-wide tracking and registry URI, and ``mlflow.set_tracking_uri`` /
``set_registry_uri`` also export them as ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` to
every later subprocess. A component that sets them and never restores them points whatever runs
next in the same process (a test suite, an embedded stack) at its server, long after that server
is gone. :func:`mlflow_pointed_at` scopes both to a ``with`` block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_ENV_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def mlflow_pointed_at(uri: str) -> Iterator[None]:
    """Use ``uri`` as MLflow's tracking and registry URI inside the block.

    On exit, MLflow's process-wide URIs and the two environment variables are exactly what they
    were before, whether the block raised or not. Not for concurrent use from several threads:
    the URIs are process-wide by MLflow's design.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {name: os.environ.get(name) for name in _ENV_VARS}
    saved_tracking = tracking_utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]  # None unsets it
        registry_utils._registry_uri = saved_registry
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
