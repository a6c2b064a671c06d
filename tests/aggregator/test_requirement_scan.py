"""Logging a model skips MLflow's warning-only checks, and only while it logs."""

from __future__ import annotations

import pytest
from mlflow.models import utils as model_utils
from mlflow.utils import environment

from aggregator.model_saving import without_warning_only_checks


def test_the_checks_are_skipped_inside_and_restored_after_even_on_error() -> None:
    scan = environment.warn_dependency_requirement_mismatches  # type: ignore[attr-defined]
    serving = model_utils._validate_serving_input
    with pytest.raises(RuntimeError), without_warning_only_checks():
        replaced = environment.warn_dependency_requirement_mismatches  # type: ignore[attr-defined]
        assert replaced is not scan
        assert replaced(["numpy==0.0.1"]) is None  # no scan, no warning
        assert model_utils._validate_serving_input is not serving
        assert model_utils._validate_serving_input("runs:/x/model", "{}") is None
        raise RuntimeError("logging failed")
    assert environment.warn_dependency_requirement_mismatches is scan  # type: ignore[attr-defined]
    assert model_utils._validate_serving_input is serving
