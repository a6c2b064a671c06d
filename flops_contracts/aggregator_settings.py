"""Aggregator configuration, a contract between the manager and the aggregator.

The manager writes it into a service's environment (``FLOPS_*`` variables); the aggregator
reads it back from there (or from a JSON file).
"""

from __future__ import annotations

import enum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flops_contracts.ids import check_identifier
from flops_contracts.spec import TrainingMode, TrainingSpec


class AggregatorRole(enum.StrEnum):
    """Classic aggregator, or the root / a cluster aggregator of hierarchical FL."""

    CLASSIC = "classic"
    ROOT = "root"
    CLUSTER = "cluster"


class AggregatorSettings(BaseModel):
    """Everything an aggregator process needs."""

    model_config = ConfigDict(extra="forbid")

    role: AggregatorRole = AggregatorRole.CLASSIC
    training: TrainingSpec = Field(default_factory=lambda: TrainingSpec())
    repo_dir: str | None = Field(None, description="user repository (classic and root)")
    listen_address: str = "0.0.0.0:8080"
    project_id: str = "local"
    project_name: str | None = None
    instance: str | None = None
    root_address: str | None = Field(None, description="cluster role: the root's host:port")
    cluster_name: str | None = None
    expected_clients: int | None = Field(
        None, ge=1, description="clients deployed (learners, or clusters for the root)"
    )
    events_uri: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None
    mlflow_artifact_location: str | None = None
    registered_model_name: str | None = None
    repository_url: str | None = None
    commit: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    root_tls_ca_file: str | None = None
    data_placement: list[dict[str, Any]] = Field(
        default_factory=list,
        description="learners placed on FLOps nodes: learner, node, cluster, rows, "
                    "label_histogram (logged to MLflow as per-learner data statistics)")

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str) -> str:
        return check_identifier(value, what="project id")

    @field_validator("instance", "cluster_name", "registered_model_name")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, what="name")

    @model_validator(mode="after")
    def _role_needs(self) -> Self:
        if self.role is AggregatorRole.CLUSTER and not self.root_address:
            raise ValueError("a cluster aggregator needs root_address (FLOPS_ROOT_ADDRESS)")
        if self.role is not AggregatorRole.CLUSTER and not self.repo_dir:
            raise ValueError("classic and root aggregators need repo_dir (FLOPS_REPO_DIR)")
        if self.role is AggregatorRole.CLASSIC and self.training.mode is not TrainingMode.CLASSIC:
            raise ValueError("role 'classic' needs training.mode 'classic'")
        if self.role is not AggregatorRole.CLASSIC and (
            self.training.mode is not TrainingMode.HIERARCHICAL
        ):
            raise ValueError(f"role {self.role.value!r} needs training.mode 'hierarchical'")
        tls = [self.tls_cert_file, self.tls_key_file, self.tls_ca_file]
        if any(tls) and not all(tls):
            raise ValueError("TLS needs tls_cert_file, tls_key_file and tls_ca_file together")
        return self

    @property
    def instance_name(self) -> str:
        """Instance name used in events."""
        if self.instance:
            return self.instance
        if self.role is AggregatorRole.CLUSTER:
            return f"cluster-{self.cluster_name or 'default'}"
        return self.role.value
