"""Third-party usage telemetry, which every FLOps process turns off.

FLOps runs on devices that belong to its users, often without a route to the internet. Flower
and MLflow each report usage to their vendor unless told not to:

- MLflow 3 starts a telemetry client as ``mlflow`` is imported. Its background thread fetches a
  configuration from the internet and, when that fails, removes ``_MLFLOW_TELEMETRY_SESSION_ID``
  from ``os.environ`` again. A tracking request that copies the environment at that moment
  (``requests`` reads proxy settings from it) fails with ``KeyError``; an aggregator logging
  its metrics failed this way.
- Flower reports events unless ``FLWR_TELEMETRY_ENABLED`` is ``0``.

The settings are defaults: a user who sets one of them explicitly keeps their value.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from types import MappingProxyType
from typing import Final

TELEMETRY_OFF: Final[Mapping[str, str]] = MappingProxyType({
    "FLWR_TELEMETRY_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
})
"""The environment variables, and their values, that turn Flower's and MLflow's telemetry off."""


def disable_telemetry(environ: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Set every :data:`TELEMETRY_OFF` variable that ``environ`` does not set; return it.

    Call it with ``os.environ`` before ``mlflow`` or ``flwr`` is imported: both read their
    setting once, on import.
    """
    for name, value in TELEMETRY_OFF.items():
        environ.setdefault(name, value)
    return environ
