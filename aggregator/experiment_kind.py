"""Tag a project's MLflow experiment so that MLflow's UI opens its training runs.

See :mod:`flops_contracts.tracking_ui` for the tags and why.
"""

from __future__ import annotations

import logging

from flops_contracts.tracking_ui import experiment_tags

logger = logging.getLogger(__name__)


def mark_model_training(tracking_uri: str, experiment_id: str) -> bool:
    """Set the experiment's UI tags; return whether it worked.

    A tracking server that refuses them costs only the UI's default view: never fatal.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        for key, value in experiment_tags().items():
            client.set_experiment_tag(experiment_id, key, value)
    except Exception:
        logger.warning("could not tag MLflow experiment %s for the UI", experiment_id,
                       exc_info=True)
        return False
    return True
