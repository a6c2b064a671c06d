"""Load the served model and what the registry knows about it: every MLflow call lives here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from inference_server.metadata import ModelFacts, ModelRef, UriKind, parse_model_uri
from inference_server.scoring import Predict
from inference_server.validation import (
    ColumnKind,
    ColumnSpec,
    ColumnsSignature,
    InputSignature,
    TensorSignature,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# MLflow DataType name -> (kind, pandas dtype after conversion)
_COLUMN_TYPES: dict[str, tuple[ColumnKind, str]] = {
    "boolean": (ColumnKind.BOOLEAN, "bool"),
    "integer": (ColumnKind.INTEGER, "int32"),
    "long": (ColumnKind.INTEGER, "int64"),
    "float": (ColumnKind.FLOAT, "float32"),
    "double": (ColumnKind.FLOAT, "float64"),
    "string": (ColumnKind.STRING, "object"),
    "binary": (ColumnKind.BINARY, "object"),
    "datetime": (ColumnKind.DATETIME, "datetime64[ns]"),
}


class ModelLoadError(Exception):
    """The model cannot be resolved or loaded; ``message`` names the URI and the cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """A loaded model: how to call it, its input signature, and facts for ``/metadata``."""

    predict: Predict
    signature: InputSignature | None
    facts: ModelFacts


def load_served_model(model_uri: str, *, tracking_uri: str | None) -> ServedModel:
    """Resolve ``model_uri`` (aliases and ``latest`` to a version) and load it as pyfunc.

    Parameters
    ----------
    model_uri
        Any URI ``mlflow.pyfunc.load_model`` accepts.
    tracking_uri
        Tracking and registry URI; ``None`` keeps MLflow's defaults (``MLFLOW_TRACKING_URI``).

    Returns
    -------
    ServedModel
        Registry and run details are best effort: unknown ones stay ``None``.

    Raises
    ------
    ModelLoadError
        If the model cannot be resolved or loaded.
    """
    import mlflow
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    ref = parse_model_uri(model_uri)
    # Without a tracking server (a model baked into an image), MLflow's default store would be
    # a new SQLite file in the working directory: nothing to look up there, and creating it
    # costs seconds of start-up (and SQLAlchemy in the image). Ask a store only if one is set.
    configured = bool(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    client = (MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
              if configured or ref.in_registry else None)
    version: Any = None
    if ref.in_registry:
        version = _resolve_version(client, ref, model_uri)
    loaded_uri = (f"models:/{version.name}/{version.version}" if version is not None
                  else model_uri)
    try:
        model = mlflow.pyfunc.load_model(loaded_uri)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load model {model_uri!r}"
            + (f" (resolved to {loaded_uri})" if loaded_uri != model_uri else "")
            + f": {_first_line(exc)}"
        ) from exc
    meta = model.metadata
    run_id = getattr(version, "run_id", None) or meta.run_id or ref.run_id
    model_id = getattr(meta, "model_id", None) or ref.model_id
    run = (_best_effort(lambda: client.get_run(run_id), what=f"run {run_id}")
           if run_id and client is not None else None)
    facts = ModelFacts(
        model_uri=model_uri,
        loaded_uri=loaded_uri,
        name=getattr(version, "name", None) or ref.name,
        version=str(version.version) if version is not None else ref.version,
        alias=ref.alias,
        run_id=run_id,
        model_id=model_id,
        flavors=tuple(sorted(meta.flavors or {})),
        signature=_signature_dict(meta.signature),
        version_tags=dict(getattr(version, "tags", None) or {}),
        run_tags=dict(run.data.tags) if run is not None else {},
        run_metrics={k: float(v) for k, v in run.data.metrics.items()} if run is not None else {},
        mlflow_version=mlflow.__version__,
        loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    signature = signature_from_schema(meta.get_input_schema())

    def predict(data: Any, params: dict[str, Any] | None) -> Any:
        return model.predict(data, params=params)

    return ServedModel(predict=predict, signature=signature, facts=facts)


def signature_from_schema(schema: Any) -> InputSignature | None:
    """Describe an MLflow input ``Schema`` for :func:`inference_server.validation.conform`.

    Returns ``None`` (no checks of our own; MLflow still enforces its schema) for models without
    a signature and for multi-tensor signatures.
    """
    if schema is None or not schema.inputs:
        return None
    if schema.is_tensor_spec():
        if len(schema.inputs) != 1 or schema.has_input_names():
            return None
        spec = schema.inputs[0]
        return TensorSignature(dtype=str(spec.type), shape=tuple(int(s) for s in spec.shape))
    named = schema.has_input_names()
    columns = []
    for column in schema.inputs:
        kind, dtype = _COLUMN_TYPES.get(getattr(column.type, "name", ""),
                                        (ColumnKind.ANY, "object"))
        columns.append(ColumnSpec(
            name=column.name if named else None,
            kind=kind,
            dtype=dtype,
            required=bool(getattr(column, "required", True)),
        ))
    return ColumnsSignature(tuple(columns))


def _resolve_version(client: Any, ref: ModelRef, model_uri: str) -> Any:
    """Return the ``ModelVersion`` a registry URI points to now."""
    try:
        if ref.kind is UriKind.REGISTRY_VERSION:
            return client.get_model_version(ref.name, ref.version)
        if ref.kind is UriKind.REGISTRY_ALIAS:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        versions = client.search_model_versions(f"name = '{ref.name}'")
        if ref.kind is UriKind.REGISTRY_STAGE:
            versions = [v for v in versions
                        if str(v.current_stage).lower() == str(ref.stage).lower()]
    except Exception as exc:
        raise ModelLoadError(f"cannot resolve model {model_uri!r}: {_first_line(exc)}") from exc
    if not versions:
        raise ModelLoadError(f"cannot resolve model {model_uri!r}: no matching model version")
    return max(versions, key=lambda v: int(v.version))


def _signature_dict(signature: Any) -> Mapping[str, Any] | None:
    if signature is None:
        return None
    raw = signature.to_dict()
    return {key: json.loads(value) if isinstance(value, str) else value
            for key, value in raw.items()}


def _best_effort(fetch: Callable[[], T], *, what: str) -> T | None:
    try:
        return fetch()
    except Exception:
        logger.warning("could not read %s from MLflow; /metadata leaves it null", what,
                       exc_info=True)
        return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:500] if lines else type(exc).__name__
