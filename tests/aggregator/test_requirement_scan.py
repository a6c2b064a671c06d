"""Logging a model skips MLflow's scan of installed packages, and only while it logs."""

from __future__ import annotations

import pytest
from mlflow.utils import environment

from aggregator.model_saving import without_requirement_scan


def test_the_check_is_skipped_inside_and_restored_after_even_on_error() -> None:
    original = environment.warn_dependency_requirement_mismatches  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), without_requirement_scan():
        replaced = environment.warn_dependency_requirement_mismatches  # type: ignore[attr-defined]
        assert replaced is not original
        assert replaced(["numpy==0.0.1"]) is None  # no scan, no warning
        raise RuntimeError("logging failed")
    assert environment.warn_dependency_requirement_mismatches is original  # type: ignore[attr-defined]
