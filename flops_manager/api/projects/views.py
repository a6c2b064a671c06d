"""Conversion of domain records to API response dictionaries."""

from __future__ import annotations

from typing import Any

from flops_contracts.tracking_ui import runs_view_url
from flops_manager.api.common import iso
from flops_manager.lifecycle.state import Phase, Project
from flops_manager.ports.records import RejectedEvent, StoredEvent


def links(project: Project, tracking_url: str | None) -> dict[str, str | None]:
    """Return browser links into MLflow (the runs view, run, model) and to the inference server.

    The inference link appears once the project is ``serving`` (its server listens).
    """
    base = tracking_url.rstrip("/") if tracking_url else None
    model = project.model or {}
    run, experiment = model.get("mlflow_run_id"), model.get("mlflow_experiment_id")
    name, version = model.get("registered_model"), model.get("model_version")
    return {
        "tracking": base,
        "inference": project.endpoints.get("inference")
        if project.phase is Phase.SERVING
        else None,
        "mlflow_runs": runs_view_url(base, str(experiment))
        if base and experiment is not None
        else None,
        "mlflow_run": f"{base}/#/experiments/{experiment}/runs/{run}"
        if base and run and experiment is not None
        else None,
        "mlflow_model": f"{base}/#/models/{name}/versions/{version}"
        if base and name and version is not None
        else None,
    }


BUILD_FIELDS = ("commit", "cache_hit", "timings", "images", "platforms", "dependency_hash",
                "variants")
"""What users see of a build (not paths on the manager's machine)."""


def build_view(build: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the API form of a project's build result."""
    if build is None:
        return None
    return {k: build[k] for k in BUILD_FIELDS if k in build}


def project_view(project: Project, tracking_url: str | None) -> dict[str, Any]:
    """Return the API form of ``project``."""
    return {
        "id": project.id,
        "owner": project.owner,
        "phase": project.phase.value,
        "spec": project.spec,
        "repository": {"url": project.repository.get("url"), "ref": project.repository.get("ref")},
        "components": project.components,
        "progress": {
            "round": project.round,
            "total_rounds": project.total_rounds,
            "metrics": project.metrics,
        },
        "model": project.model,
        "placement": [dict(p) for p in project.placement],
        "build": build_view(project.build),
        "links": links(project, tracking_url),
        "last_error": project.last_error,
        "pending_actions": [
            {**p.action, "attempts": p.attempts, "last_error": p.last_error}
            for p in project.pending
        ],
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
        "phase_since": iso(project.phase_since),
    }


def event_view(stored: StoredEvent) -> dict[str, Any]:
    """Return the API form of a stored event."""
    return {"seq": stored.seq, "received_at": iso(stored.received_at), "event": stored.event}


def rejected_view(rejected: RejectedEvent) -> dict[str, Any]:
    """Return the API form of a refused message."""
    return {"id": rejected.id, "topic": rejected.topic, "payload": rejected.payload,
            "reason": rejected.reason, "received_at": iso(rejected.received_at)}
