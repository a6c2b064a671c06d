import textwrap
from pathlib import Path

import pytest

from flops_contracts.errors import ContractError
from learner_base.repository import find_dependency_file, load_model_manager

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_sklearn"

GOOD = """
import numpy as np
from learner_base import ModelManager as Base

class ModelManager(Base):
    def set_model_data(self, context): pass
    def get_model(self): return None
    def get_model_parameters(self): return [np.zeros(3)]
    def set_model_parameters(self, parameters): pass
    def fit_model(self, config): return 1
    def evaluate_model(self, config): return 0.0, 1.0, 1
"""


def write_repo(tmp_path: Path, source: str | None, name: str = "model_manager.py") -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    if source is not None:
        (repo / name).write_text(textwrap.dedent(source))
    return repo


def contract_error(repo: Path) -> str:
    with pytest.raises(ContractError) as info:
        load_model_manager(repo)
    return info.value.message


def test_example_repository_satisfies_the_contract():
    manager = load_model_manager(EXAMPLE)
    params = manager.get_model_parameters()
    assert [p.shape for p in params] == [(10, 64), (10,)]
    dependency_file = find_dependency_file(EXAMPLE)
    assert dependency_file is not None
    assert dependency_file.name == "requirements.txt"


def test_duck_typed_class_without_base_is_accepted(tmp_path):
    source = GOOD.replace("(Base)", "").replace("from learner_base import ModelManager as Base", "")
    assert load_model_manager(write_repo(tmp_path, source)).fit_model(None) == 1


def test_missing_file(tmp_path):
    message = contract_error(write_repo(tmp_path, None))
    assert "no model_manager.py" in message


def test_missing_class(tmp_path):
    message = contract_error(write_repo(tmp_path, "class Other: pass\n"))
    assert "defines no class ModelManager" in message and "model_manager.py" in message


def test_missing_method(tmp_path):
    source = GOOD.replace("    def fit_model(self, config): return 1\n", "")
    message = contract_error(write_repo(tmp_path, source))
    assert "does not implement fit_model" in message


def test_method_that_raises(tmp_path):
    source = GOOD.replace("return [np.zeros(3)]", "raise RuntimeError('weights missing')")
    message = contract_error(write_repo(tmp_path, source))
    assert "get_model_parameters() raised RuntimeError: weights missing" in message
    assert "model_manager.py:" in message  # names the line


def test_constructor_that_raises(tmp_path):
    source = GOOD + "\n    def __init__(self):\n        raise ValueError('no GPU')\n"
    message = contract_error(write_repo(tmp_path, source))
    assert "ModelManager() raised ValueError: no GPU" in message


def test_import_error(tmp_path):
    message = contract_error(write_repo(tmp_path, "import not_a_real_module_xyz\n"))
    assert "importing it failed" in message and "not_a_real_module_xyz" in message


def test_parameters_must_be_arrays(tmp_path):
    source = GOOD.replace("return [np.zeros(3)]", "return [[1, 2, 3]]")
    message = contract_error(write_repo(tmp_path, source))
    assert "get_model_parameters() returned item 0 [1, 2, 3] (list)" in message
    assert "it must return a non-empty list of numpy arrays" in message
