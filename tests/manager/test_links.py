"""Links of a project: MLflow's runs view, and the inference URL only once it answers."""

from __future__ import annotations

from flops_manager.api.projects.views import links
from flops_manager.lifecycle.state import Phase
from tests.manager.test_planner import proj

MODEL = {"mlflow_experiment_id": "7", "mlflow_run_id": "r1", "registered_model": "m",
         "model_version": 2}


def test_mlflow_links_open_the_runs_view() -> None:
    found = links(proj(Phase.COMPLETED, model=MODEL), "http://127.0.0.1:5000/")
    assert found["mlflow_runs"] == ("http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey="
                                    "flops-training-runs&workflowType=machine_learning")
    assert found["mlflow_run"] == "http://127.0.0.1:5000/#/experiments/7/runs/r1"
    assert links(proj(Phase.TRAINING), "http://h")["mlflow_runs"] is None


def test_the_inference_link_appears_when_serving() -> None:
    endpoints = {"inference": "http://127.0.0.1:40000"}
    assert links(proj(Phase.POST_TRAINING, endpoints=endpoints), None)["inference"] is None
    assert links(proj(Phase.SERVING, endpoints=endpoints), None)["inference"] == (
        "http://127.0.0.1:40000")
