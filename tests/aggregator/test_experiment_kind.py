"""The project's MLflow experiment is typed as model training, so the UI opens its runs."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from aggregator.experiment_kind import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    mark_model_training,
)


def test_the_experiment_kind_tag_is_set(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("flops-x", artifact_location=str(tmp_path / "a"))
    assert mark_model_training(uri, experiment)
    assert client.get_experiment(experiment).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    assert not mark_model_training(uri, "999")  # an unknown experiment: a warning, no error


def test_the_kind_is_one_the_installed_mlflow_ui_knows() -> None:
    import mlflow

    js = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    bundles = "".join(p.read_text(errors="replace") for p in js.glob("main.*.js"))
    assert f'"{EXPERIMENT_KIND_TAG}"' in bundles
    assert f'="{MODEL_TRAINING_KIND}"' in bundles
