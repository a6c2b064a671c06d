"""Learner configuration (environment variables ``FLOPS_*`` or a JSON file)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flops_contracts.ids import check_data_tag, check_identifier


class LearnerSettings(BaseModel):
    """Everything a learner process needs; read with ``flops_contracts.config.load_settings``."""

    model_config = ConfigDict(extra="forbid")

    repo_dir: str = Field(..., description="directory holding the user's repository")
    server_address: str = Field(..., description="aggregator address host:port")
    project_id: str = "local"
    instance: str | None = None
    learner_index: int = Field(
        0, ge=0, description="default: learner_index_offset + instance_index"
    )
    learner_count: int = Field(1, ge=1)
    instance_index: int | None = Field(
        None, ge=0, description="this instance's index within its service (set by orchestrators)"
    )
    learner_index_offset: int = Field(
        0, ge=0, description="index of this service's first learner (learners of other clusters)"
    )
    data_tags: list[str] = Field(default_factory=list)
    seed: int = Field(0, description="default: the learner index")
    events_uri: str | None = None
    connect_timeout_s: float = Field(300.0, gt=0)
    tls_root_cert: str | None = Field(None, description="PEM file of the CA to trust (TLS)")
    data_server: str | None = Field(
        None, description="this node's ML data server, grpc://host:port (token: FLOPS_DATA_TOKEN)"
    )

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str) -> str:
        return check_identifier(value, what="project id")

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, what="instance")

    @field_validator("data_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [check_data_tag(t) for t in value]

    @model_validator(mode="after")
    def _derived_defaults(self) -> Self:
        given = self.model_fields_set
        if "learner_index" not in given and self.instance_index is not None:
            self.learner_index = self.learner_index_offset + self.instance_index
        if "seed" not in given:
            self.seed = self.learner_index
        return self

    @property
    def instance_name(self) -> str:
        """Instance name of this learner (default ``learner-<index>``)."""
        return self.instance or f"learner-{self.learner_index}"
