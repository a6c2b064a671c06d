"""Save the trained model with its MLflow flavor, or as a generic pickled model (always saved).

:func:`log_trained_model` tries ``mlflow.<flavor>.log_model`` with FLOps' known flavor options
(for sklearn's skops format: trust the library types the model is made of), updated by the
repository's ``ModelManager.mlflow_log_options()``. If that fails, the model is logged as a
:class:`aggregator.pickled_model.PickledModel` pyfunc model and a warning says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from flops_contracts.errors import ContractError
from learner_base.model_manager import call_optional

logger = logging.getLogger(__name__)

_FLAVOR_BY_MODULE = {
    "sklearn": "sklearn",
    "torch": "pytorch",
    "keras": "keras",
    "tensorflow": "tensorflow",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
}
_FLAVOR_PACKAGES = {
    "sklearn": ["scikit-learn", "numpy", "skops"],
    "pytorch": ["torch", "numpy"],
    "keras": ["keras", "numpy"],
    "tensorflow": ["tensorflow", "numpy"],
    "xgboost": ["xgboost", "numpy"],
    "lightgbm": ["lightgbm", "numpy"],
    "pyfunc": ["cloudpickle", "numpy"],
}
TRUSTED_LIBRARIES = ("sklearn", "numpy", "scipy")
"""Libraries whose types an sklearn model saved with skops may hold and FLOps trusts."""


@dataclasses.dataclass(frozen=True)
class SavedModel:
    """What was logged: the model's URI and logged-model id, its flavor and any warning."""

    model_uri: str
    flavor: str
    model_id: str | None = None
    """MLflow 3's logged-model id (``None`` on servers without logged models)."""
    warning: str | None = None


def infer_flavor(manager: Any, model: Any) -> str:
    """Return the MLflow flavor for ``model``.

    Raises
    ------
    ContractError
        If no flavor is declared and none can be inferred from the model's type.
    """
    declared = getattr(manager, "mlflow_flavor", None)
    if declared:
        return str(declared)
    root = type(model).__module__.split(".")[0]
    if root in _FLAVOR_BY_MODULE:
        return _FLAVOR_BY_MODULE[root]
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return "pyfunc"
    raise ContractError(
        f"cannot tell how to log a model of type {type(model).__module__}."
        f"{type(model).__name__} to MLflow; set ModelManager.mlflow_flavor "
        f"(one of {', '.join(sorted(set(_FLAVOR_BY_MODULE.values())))}, pyfunc)"
    )


def likely_flavors(manager: Any, loaded: Iterable[str]) -> list[str]:
    """The flavors a model of ``manager`` may be logged with, without calling user code (pure).

    The declared ``mlflow_flavor``, else those of the libraries among the ``loaded`` module
    names (the repository imported them), and ``pyfunc`` (the fallback) always.
    """
    declared = getattr(manager, "mlflow_flavor", None)
    if declared:
        flavors = [str(declared)]
    else:
        roots = {name.split(".")[0] for name in loaded}
        flavors = [flavor for module, flavor in _FLAVOR_BY_MODULE.items() if module in roots]
    return list(dict.fromkeys([*flavors, "pyfunc"]))


def prepare_model_logging(manager: Any) -> None:
    """Import what logging the model will need, so that the end of training does not wait.

    Meant for a background thread while rounds run: MLflow's flavor modules and, for sklearn,
    skops (2 s to import on a 2-core machine). Failures are ignored: logging the model
    imports again and reports them.
    """
    for flavor in likely_flavors(manager, list(sys.modules)):
        with contextlib.suppress(Exception):
            importlib.import_module(f"mlflow.{flavor}")
        if flavor == "sklearn":
            with contextlib.suppress(Exception):
                importlib.import_module("skops.io")


def default_pip_requirements(flavor: str) -> list[str]:
    """Pin the flavor's packages to the versions installed here."""
    requirements = []
    for package in _FLAVOR_PACKAGES.get(flavor, ["numpy"]):
        try:
            version = metadata.version(package).split("+")[0]
        except metadata.PackageNotFoundError:
            continue
        requirements.append(f"{package}=={version}")
    return requirements


def trusted_library_types(untrusted: Iterable[str],
                          libraries: Iterable[str] = TRUSTED_LIBRARIES) -> list[str]:
    """Return the type names of ``untrusted`` that belong to ``libraries`` (pure)."""
    roots = set(libraries)
    return sorted({name for name in untrusted if name.split(".")[0] in roots})


def flavor_defaults(flavor: str, model: Any, *, input_example: Any | None) -> dict[str, Any]:
    """FLOps' options for ``mlflow.<flavor>.log_model`` that the flavor needs for ``model``.

    sklearn (skops format): trust the library types the model is made of. PyTorch: without an
    input example, MLflow's default traced format (``pt2``) cannot save, so pickle the module.
    """
    if flavor == "pytorch" and input_example is None:
        return {"serialization_format": "pickle"}
    if flavor != "sklearn":
        return {}
    try:
        import skops.io
    except ImportError:  # MLflow then needs another serialization format anyway
        return {}
    try:
        untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    except Exception:  # noqa: BLE001 - skops cannot even dump it: the flavor will say so
        return {}
    trusted = trusted_library_types(untrusted)
    return {"skops_trusted_types": trusted} if trusted else {}


def _no_mismatch_check(requirements: list[str]) -> None:
    """Stands in for MLflow's requirement check while a model is logged (see below)."""


def _no_serving_check(model_uri: str, serving_input: Any) -> None:
    """Stands in for MLflow's serving check of the input example (see below)."""


@contextlib.contextmanager
def _replaced(module: Any, name: str, stand_in: Any) -> Iterator[None]:
    """Replace ``module.name`` while the block runs (nothing, if MLflow moved it)."""
    original = getattr(module, name, None)
    if original is None:
        yield
        return
    setattr(module, name, stand_in)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextlib.contextmanager
def without_warning_only_checks() -> Iterator[None]:
    """Skip two MLflow checks that only ever warn, while FLOps logs a model.

    * That this interpreter satisfies the model's pip requirements: its first run maps every
      installed distribution to its modules (``importlib.metadata.packages_distributions``),
      2-4 s per aggregator on a 2-core machine with a full environment. FLOps always passes
      explicit requirements (the repository's, or the versions installed here).
    * That the input example could be served: MLflow loads the model it just saved back
      through pyfunc and predicts the example (0.85 s of the 1.1 s that logging
      digits_sklearn's model took, after the last round, before ``completed``). The inference
      image is checked where it is built and served (``model_image``, the inference server).

    If MLflow moves either function, that check runs as before.
    """
    from mlflow.models import utils as model_utils
    from mlflow.utils import environment

    with _replaced(environment, "warn_dependency_requirement_mismatches", _no_mismatch_check), \
            _replaced(model_utils, "_validate_serving_input", _no_serving_check):
        yield


def log_trained_model(manager: Any, *, source_dir: Path | None = None) -> SavedModel:
    """Log ``manager.get_model()`` into the active MLflow run; fall back to a pickled model.

    The model is not registered here: :meth:`aggregator.tracking.MlflowTracker.log_model`
    registers it with its tags in one call each for the model and the version.

    Parameters
    ----------
    manager
        The repository's ModelManager (optional methods may be missing).
    source_dir
        The repository; its modules are pickled by value in a fallback model.
    """
    model = manager.get_model()
    common: dict[str, Any] = {"name": "model"}
    example = call_optional(manager, "input_example")
    if example is not None:
        common["input_example"] = example
    try:
        flavor = infer_flavor(manager, model)
        options = {**flavor_defaults(flavor, model, input_example=example),
                   **(call_optional(manager, "mlflow_log_options") or {})}
        requirements = call_optional(manager, "pip_requirements") or \
            default_pip_requirements(flavor)
        module = importlib.import_module(f"mlflow.{flavor}")
        with without_warning_only_checks():
            if flavor == "pyfunc":
                info = module.log_model(python_model=model, pip_requirements=requirements,
                                        **common, **options)
            else:
                info = module.log_model(model, pip_requirements=requirements, **common,
                                        **options)
        return _saved(info, flavor)
    except Exception as exc:  # noqa: BLE001 - a trained model is always saved
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        why = f"{type(exc).__name__}: {first_line}"
    warning = (f"the model could not be saved with its MLflow flavor ({why}); it was saved as a "
               "generic pickled pyfunc model instead (see ModelManager.mlflow_log_options to "
               "pass flavor options)")
    logger.warning("%s", warning)
    info = _log_pickled(model, common=common, source_dir=source_dir)
    return dataclasses.replace(_saved(info, "pyfunc"), warning=warning)


def _saved(info: Any, flavor: str) -> SavedModel:
    model_id = getattr(info, "model_id", None)
    return SavedModel(model_uri=str(info.model_uri), flavor=flavor,
                      model_id=None if model_id is None else str(model_id))


def _log_pickled(model: Any, *, common: dict[str, Any], source_dir: Path | None) -> Any:
    import cloudpickle  # type: ignore[import-untyped]
    import mlflow.pyfunc

    from aggregator import pickled_model

    modules = [pickled_model, *_repository_modules(source_dir)]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        with without_warning_only_checks():
            return mlflow.pyfunc.log_model(
                python_model=pickled_model.PickledModel(model),
                pip_requirements=fallback_requirements(model),
                **common,
            )
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


def fallback_requirements(model: Any) -> list[str]:
    """Requirements of a pickled model: its library's (if known) and cloudpickle's."""
    library = _FLAVOR_BY_MODULE.get(type(model).__module__.split(".")[0], "pyfunc")
    return list(dict.fromkeys([*default_pip_requirements(library),
                               *default_pip_requirements("pyfunc")]))


def _repository_modules(source_dir: Path | None) -> list[Any]:
    if source_dir is None:
        return []
    root = str(Path(source_dir).resolve())
    return [
        module for module in list(sys.modules.values())
        if str(getattr(module, "__file__", None) or "").startswith(root + "/")
    ]
