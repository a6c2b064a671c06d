"""Mark a project's MLflow experiment as model training, so the UI opens its runs.

MLflow 3 shows an experiment without a type as a GenAI experiment (an overview of traces); the
experiment tag ``mlflow.experimentKind`` = ``custom_model_development`` makes the UI open the
training runs table with their metrics (the values are those of MLflow's UI,
``ExperimentKind`` in ``mlflow/server/js``).
"""

from __future__ import annotations

import logging

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"

logger = logging.getLogger(__name__)


def mark_model_training(tracking_uri: str, experiment_id: str) -> bool:
    """Tag the experiment; return whether it worked.

    A tracking server that refuses the tag costs only the UI's default view: never fatal.
    """
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri).set_experiment_tag(
            experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    except Exception:  # noqa: BLE001 - the UI's default view is not worth failing a training
        logger.warning("could not set %s on experiment %s", EXPERIMENT_KIND_TAG, experiment_id,
                       exc_info=True)
        return False
    return True
