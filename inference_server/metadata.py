"""What is served: model URI parsing and the ``GET /metadata`` document (pure functions)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

# Tags that FLOps' aggregator sets on the run and on the registered model version.
TAG_PROJECT = "flops.project_id"
TAG_COMMIT = "flops.commit"
TAG_REPOSITORY = "flops.repository"
TAG_SELECTION_METRIC = "flops.selection_metric"
TAG_BEST_ROUND = "flops.best_round"


class UriKind(enum.StrEnum):
    """How a model URI names its model."""

    REGISTRY_VERSION = "registry_version"
    REGISTRY_ALIAS = "registry_alias"
    REGISTRY_LATEST = "registry_latest"
    REGISTRY_STAGE = "registry_stage"
    LOGGED_MODEL = "logged_model"
    RUN = "run"
    OTHER = "other"


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """The parts of a model URI."""

    kind: UriKind
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    stage: str | None = None
    model_id: str | None = None
    run_id: str | None = None

    @property
    def in_registry(self) -> bool:
        """Whether the URI names a registered model."""
        return self.kind in (UriKind.REGISTRY_VERSION, UriKind.REGISTRY_ALIAS,
                             UriKind.REGISTRY_LATEST, UriKind.REGISTRY_STAGE)


def parse_model_uri(uri: str) -> ModelRef:
    """Split a model URI into name, version, alias, run id, ...

    ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``,
    ``models:/NAME/STAGE``, ``models:/m-ID`` (an MLflow 3 logged model), ``runs:/RUN_ID/PATH``;
    anything else (local paths, ``file:``, ``s3:``, ...) is :attr:`UriKind.OTHER`.
    """
    if uri.startswith("models:/"):
        rest = uri[len("models:/"):].strip("/")
        if "@" in rest and "/" not in rest:
            name, _, alias = rest.partition("@")
            return ModelRef(UriKind.REGISTRY_ALIAS, name=name, alias=alias)
        name, sep, suffix = rest.partition("/")
        if not sep:
            return ModelRef(UriKind.LOGGED_MODEL, model_id=name)
        if suffix.isdigit():
            return ModelRef(UriKind.REGISTRY_VERSION, name=name, version=suffix)
        if suffix.lower() == "latest":
            return ModelRef(UriKind.REGISTRY_LATEST, name=name)
        return ModelRef(UriKind.REGISTRY_STAGE, name=name, stage=suffix)
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/"):].strip("/").partition("/")[0]
        return ModelRef(UriKind.RUN, run_id=run_id or None)
    return ModelRef(UriKind.OTHER)


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What the loader found out about the served model; ``None`` where unknown."""

    model_uri: str
    loaded_uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    model_id: str | None = None
    flavors: tuple[str, ...] = ()
    signature: Mapping[str, Any] | None = None
    version_tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    run_tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    run_metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    mlflow_version: str | None = None
    loaded_at: str | None = None


def metadata_document(facts: ModelFacts, *, project_id: str, instance: str) -> dict[str, Any]:
    """Build the ``GET /metadata`` JSON document.

    Parameters
    ----------
    facts
        What is known about the model.
    project_id, instance
        The serving process's own identity (``server`` section).

    Returns
    -------
    dict
        ``model_name``, ``model_version``, ``model_uri``, ``run_id``, ``project_id``,
        ``commit``, ``selection`` (metric, value, best round), ``metrics``, ``tags``, ...;
        tags are read from the model version first, then from the run.
    """
    def tag(key: str) -> str | None:
        value = facts.version_tags.get(key) or facts.run_tags.get(key)
        return None if value in (None, "", "unknown") else value

    metric = tag(TAG_SELECTION_METRIC)
    best_round = tag(TAG_BEST_ROUND)
    value = facts.run_metrics.get(f"best_{metric}") if metric else None
    return {
        "model_name": facts.name,
        "model_version": facts.version,
        "model_alias": facts.alias,
        "model_uri": facts.model_uri,
        "loaded_uri": facts.loaded_uri,
        "run_id": facts.run_id,
        "model_id": facts.model_id,
        "project_id": tag(TAG_PROJECT),
        "commit": tag(TAG_COMMIT),
        "repository": tag(TAG_REPOSITORY),
        "selection": {
            "metric": metric,
            "value": value,
            "best_round": int(best_round) if best_round and best_round.isdigit() else None,
        },
        "metrics": dict(sorted(facts.run_metrics.items())),
        "tags": dict(sorted(facts.version_tags.items())),
        "flavors": list(facts.flavors),
        "signature": None if facts.signature is None else dict(facts.signature),
        "server": {
            "project_id": project_id,
            "instance": instance,
            "mlflow_version": facts.mlflow_version,
            "loaded_at": facts.loaded_at,
        },
    }
