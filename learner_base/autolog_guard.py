"""Keep MLflow autologging that a repository enables at import out of FLOps' processes.

Repositories written for the original FLOps call ``mlflow.sklearn.autolog()`` at import. In a
learner that would open MLflow runs in the working directory at every ``fit``; in the
aggregator it would log models beside FLOps' own tracking. FLOps tracks every round itself,
so integrations enabled while the repository is imported are disabled again right after.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)


def enabled_integrations() -> list[str]:
    """Return the MLflow autologging integrations currently enabled (none if MLflow is unused)."""
    if "mlflow" not in sys.modules:
        return []
    from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

    configs: dict[str, dict[str, Any]] = AUTOLOGGING_INTEGRATIONS
    return [name for name, config in configs.items() if not config.get("disable", False)]


def disable_autologging() -> list[str]:
    """Disable every enabled MLflow autologging integration; return their names."""
    disabled = []
    for name in enabled_integrations():
        module_name = "mlflow" if name == "mlflow" else f"mlflow.{name}"
        try:
            importlib.import_module(module_name).autolog(disable=True)
        except Exception:
            logger.warning("could not disable MLflow autologging for %s", name, exc_info=True)
            continue
        disabled.append(name)
    if disabled:
        logger.info("disabled MLflow autologging the repository enabled: %s", disabled)
    return disabled
