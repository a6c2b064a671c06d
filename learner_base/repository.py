"""Load a user repository's ModelManager and check the repository contract."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from flops_contracts.errors import ContractError
from learner_base.autolog_guard import disable_autologging
from learner_base.contract_checks import CallSite, check_parameters
from learner_base.legacy_manager import adapt
from learner_base.model_manager import REQUIRED_METHODS
from learner_base.repo_imports import register_aliases

MODEL_MANAGER_FILE = "model_manager.py"
MODEL_MANAGER_CLASS = "ModelManager"
DEPENDENCY_FILES = ("requirements.txt", "pyproject.toml", "conda.yaml", "conda.yml")


def _short_trace(exc: BaseException, path: Path) -> str:
    """Return ``Type: message (file:line)`` for the innermost frame inside the repository."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(
        str(path.parent))]
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _import_module(repo_dir: Path) -> ModuleType:
    path = repo_dir / MODEL_MANAGER_FILE
    if not path.is_file():
        raise ContractError(
            f"{repo_dir}: no {MODEL_MANAGER_FILE} at the repository root; FLOps needs a "
            f"{MODEL_MANAGER_FILE} defining class {MODEL_MANAGER_CLASS}"
        )
    repo_str = str(repo_dir.resolve())
    if repo_str not in sys.path:
        sys.path.insert(0, repo_str)
    spec = importlib.util.spec_from_file_location("flops_user_model_manager", path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for non-files
        raise ContractError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    register_aliases(repo_dir.resolve())
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ContractError(
            f"{path}: importing it failed: {_short_trace(exc, path)}",
            details={"file": str(path)},
        ) from exc
    finally:
        disable_autologging()
    return module


def load_model_manager_class(repo_dir: Path) -> type[Any]:
    """Import ``model_manager.py`` from ``repo_dir`` and return its ModelManager class.

    Raises
    ------
    ContractError
        If the file or class is missing, the import fails, or a required method is missing.
    """
    module = _import_module(repo_dir)
    path = repo_dir / MODEL_MANAGER_FILE
    cls = getattr(module, MODEL_MANAGER_CLASS, None)
    if cls is None or not inspect.isclass(cls):
        raise ContractError(
            f"{path}: defines no class {MODEL_MANAGER_CLASS} (subclass "
            "learner_base.ModelManager and implement its methods)",
            details={"file": str(path)},
        )
    missing = [
        name for name in REQUIRED_METHODS
        if not callable(getattr(cls, name, None))
        or getattr(getattr(cls, name), "__isabstractmethod__", False)
    ]
    if missing:
        raise ContractError(
            f"{path}: class {cls.__name__} does not implement {', '.join(missing)}",
            details={"file": str(path), "missing": missing},
        )
    return cls


def instantiate(cls: type[Any], *, repo_dir: Path) -> Any:
    """Instantiate the ModelManager and dry-call ``get_model_parameters``.

    A ModelManager written for the original FLOps (methods without arguments) is returned
    wrapped by :func:`learner_base.legacy_manager.adapt`.

    Raises
    ------
    ContractError
        If construction or the dry call fails or returns something other than arrays.
    """
    path = repo_dir / MODEL_MANAGER_FILE
    try:
        manager = cls()
    except Exception as exc:
        raise ContractError(
            f"{path}: {cls.__name__}() raised {_short_trace(exc, path)}",
            details={"file": str(path)},
        ) from exc
    try:
        parameters = manager.get_model_parameters()
    except Exception as exc:
        raise ContractError(
            f"{path}: {cls.__name__}.get_model_parameters() raised {_short_trace(exc, path)}",
            details={"file": str(path)},
        ) from exc
    site = CallSite(file=str(path), cls=cls.__name__)
    try:
        check_parameters(parameters, source=site.method("get_model_parameters"))
    except ContractError as exc:
        raise ContractError(exc.message, details={"file": str(path)}) from None
    return adapt(manager)


def repository_dir(repo_dir: Path) -> Path:
    """Return ``repo_dir`` if it is a directory.

    Raises
    ------
    ContractError
        If it does not exist.
    """
    repo_dir = Path(repo_dir)
    if not repo_dir.is_dir():
        raise ContractError(f"repository directory {repo_dir} does not exist")
    return repo_dir


def load_model_manager(repo_dir: Path) -> Any:
    """Load, instantiate and check the repository's ModelManager in one step.

    Raises
    ------
    ContractError
        For every contract violation, with a message naming the file and the problem.
    """
    repo_dir = repository_dir(repo_dir)
    cls = load_model_manager_class(repo_dir)
    return instantiate(cls, repo_dir=repo_dir)


def find_dependency_file(repo_dir: Path) -> Path | None:
    """Return the repository's dependency file, preferring ``requirements.txt``."""
    for name in DEPENDENCY_FILES:
        candidate = Path(repo_dir) / name
        if candidate.is_file():
            return candidate
    return None
