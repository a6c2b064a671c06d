"""A local run's MLflow store is a copy of an empty, migrated schema built once per version."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_manager.cli import local_tracking
from flops_manager.cli.local_tracking import (
    default_cache_dir,
    schema_template_path,
    seed_sqlite_store,
)


def test_cache_dir_follows_xdg() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/flops")
    assert default_cache_dir({}).name == "flops"
    assert schema_template_path(Path("/c"), "3.1.0") == Path("/c/mlflow-3.1.0-schema.db")


def test_seeded_store_opens_without_migrations_and_the_template_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    cache = tmp_path / "cache"
    first = tmp_path / "a" / "mlflow.db"
    first.parent.mkdir()
    assert seed_sqlite_store(first, cache_dir=cache)
    assert not seed_sqlite_store(first, cache_dir=cache)  # an existing store is kept

    def must_not_build(path: Path) -> None:
        raise AssertionError(f"template rebuilt at {path}")

    monkeypatch.setattr(local_tracking, "build_schema_template", must_not_build)
    second = tmp_path / "b.db"
    assert seed_sqlite_store(second, cache_dir=cache)
    client = MlflowClient(tracking_uri=f"sqlite:///{second}")
    names = [e.name for e in client.search_experiments()]
    assert names == ["Default"]  # recreated by the store, not copied from the template
    experiment = client.create_experiment("x", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    assert client.get_metric_history(run.info.run_id, "loss")[0].value == 0.5


def test_a_template_that_cannot_be_built_leaves_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path) -> None:
        raise OSError("read-only cache")

    monkeypatch.setattr(local_tracking, "build_schema_template", broken)
    target = tmp_path / "mlflow.db"
    assert not seed_sqlite_store(target, cache_dir=tmp_path / "cache")
    assert not target.exists()
