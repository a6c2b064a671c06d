"""How FLOps' MLflow experiments open in MLflow's UI (3.17): the training runs, with metrics.

MLflow 3's UI opens an experiment as a GenAI experiment (a traces overview, no metric columns)
unless told otherwise. FLOps sets, on every project experiment:

- ``mlflow.experimentKind`` = ``custom_model_development``: the experiment is model training;
- ``mlflow.sharedViewState.<key>``: a saved view of the runs table with the round metrics as
  columns, newest first (MLflow's "shared view", opened by ``?viewStateShareKey=<key>``).

Links add ``workflowType=machine_learning`` (the UI's model-training mode, otherwise taken from
the browser's last choice, GenAI by default). The names are those of MLflow's UI bundle
(``mlflow/server/js``); tests check they are still there.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
RUNS_VIEW_KEY = "flops-training-runs"
RUN_METRICS = ("accuracy", "loss", "learners_answered", "learners_failed", "round_duration_s")
"""Round metrics shown as columns (``aggregator.rounds`` logs them every round)."""


def runs_view_state() -> str:
    """The saved runs-table view: metric columns, newest run first (JSON)."""
    return json.dumps({
        "selectedColumns": [f"metrics.`{name}`" for name in RUN_METRICS],
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
    })


def experiment_tags() -> dict[str, str]:
    """The tags that make MLflow's UI open a project's experiment on its training runs."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND,
            SHARED_VIEW_TAG_PREFIX + RUNS_VIEW_KEY: runs_view_state()}


def runs_view_url(base: str, experiment_id: str) -> str:
    """The UI address of the experiment's runs table with the metric columns."""
    query = urlencode({"viewStateShareKey": RUNS_VIEW_KEY, "workflowType": "machine_learning"})
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
