"""Repositories of the original FLOps: no-argument methods, package imports, import-time autolog."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from flops_contracts.errors import FlopsError
from learner_base import active_context
from learner_base.autolog_guard import disable_autologging, enabled_integrations
from learner_base.legacy_manager import LegacyModelManager, adapt, takes_argument, unwrap
from learner_base.model_manager import LearnerContext, RoundConfig
from learner_base.repo_imports import package_aliases, register_aliases


class Shared:
    mlflow_flavor = "sklearn"

    def get_model_parameters(self):
        return [np.zeros(2)]


class Original(Shared):
    def set_model_data(self):
        self.context = active_context.current()

    def fit_model(self):
        return 7

    def evaluate_model(self):
        return 0.5, 0.9, 3


class Current(Shared):
    def set_model_data(self, context):
        self.context = context

    def fit_model(self, config):
        return config.server_round

    def evaluate_model(self, config):
        return 0.5, 0.9, 3


def test_no_argument_methods_are_called_without_arguments() -> None:
    manager = adapt(Original())
    assert isinstance(manager, LegacyModelManager)
    context = LearnerContext(learner_index=2)
    active_context.publish(context)
    manager.set_model_data(context)
    assert unwrap(manager).context is context
    assert manager.fit_model(RoundConfig(server_round=1)) == 7
    assert manager.evaluate_model(RoundConfig()) == (0.5, 0.9, 3)
    assert manager.mlflow_flavor == "sklearn"  # other attributes are the repository's


def test_current_managers_are_not_wrapped() -> None:
    manager = Current()
    assert adapt(manager) is manager
    assert not takes_argument(Original().fit_model) and takes_argument(manager.fit_model)


def test_context_is_only_available_in_a_learner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(active_context, "_SLOT", [])
    with pytest.raises(FlopsError, match=r"inside ModelManager.set_model_data"):
        active_context.current()


def test_package_qualified_imports_resolve_to_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "0123abcd"  # a checkout named by its commit
    repo.mkdir()
    (repo / "model_manager.py").write_text(textwrap.dedent("""
        import numpy as np
        from my_original_repo.data_manager import DataManager
        import os.path
    """))
    (repo / "data_manager.py").write_text("class DataManager:\n    answer = 42\n")
    assert package_aliases(repo) == ["my_original_repo"]
    try:
        assert register_aliases(repo) == ["my_original_repo"]
        from my_original_repo.data_manager import DataManager  # type: ignore[import-not-found]

        assert DataManager.answer == 42
    finally:
        for name in [n for n in sys.modules if n.startswith("my_original_repo")]:
            del sys.modules[name]


def test_autolog_enabled_at_import_is_disabled_again() -> None:
    import mlflow.sklearn

    mlflow.sklearn.autolog()
    assert "sklearn" in enabled_integrations()
    assert "sklearn" in disable_autologging()
    assert "sklearn" not in enabled_integrations()
