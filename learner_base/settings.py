"""Learner configuration (environment variables ``FLOPS_*`` or a JSON file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flops_contracts.ids import check_data_tag, check_identifier


class LearnerSettings(BaseModel):
    """Everything a learner process needs; read with ``flops_contracts.config.load_settings``."""

    model_config = ConfigDict(extra="forbid")

    repo_dir: str = Field(..., description="directory holding the user's repository")
    server_address: str = Field(..., description="aggregator address host:port")
    project_id: str = "local"
    instance: str | None = None
    learner_index: int = Field(0, ge=0)
    learner_count: int = Field(1, ge=1)
    data_tags: list[str] = Field(default_factory=list)
    seed: int = 0
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

    @property
    def instance_name(self) -> str:
        """Instance name of this learner (default ``learner-<index>``)."""
        return self.instance or f"learner-{self.learner_index}"
