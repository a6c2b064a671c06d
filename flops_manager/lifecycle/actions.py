"""Actions the planner asks for: plain data, named deterministically so they are idempotent."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class Role(enum.StrEnum):
    """Service roles the manager creates through the orchestrator."""

    BUILDER = "builder"
    DATA_SERVER = "data_server"
    """No longer deployed (mock data goes to FLOps nodes); kept so that deleting a project
    created by an older manager removes its project-wide data server."""
    MOCK_DATA_PROVIDER = "mock_data_provider"
    AGGREGATOR = "aggregator"
    CLUSTER_AGGREGATOR = "cluster_aggregator"
    LEARNERS = "learners"
    MODEL_BUILDER = "model_builder"
    INFERENCE_SERVER = "inference_server"
    TRACKING_SERVER = "tracking_server"


PROJECT_ROLES = (
    Role.BUILDER,
    Role.DATA_SERVER,
    Role.MOCK_DATA_PROVIDER,
    Role.AGGREGATOR,
    Role.CLUSTER_AGGREGATOR,
    Role.LEARNERS,
    Role.MODEL_BUILDER,
    Role.INFERENCE_SERVER,
)
"""Roles of services that belong to one project (the tracking server is shared)."""

PER_CLUSTER_ROLES = frozenset({Role.CLUSTER_AGGREGATOR, Role.LEARNERS})
"""Roles with one service per cluster in hierarchical projects."""


class ActionKind(enum.StrEnum):
    """What an action does."""

    BUILD_IMAGES = "build_images"
    DEPLOY_TRACKING = "deploy_tracking"
    DEPLOY_DATA = "deploy_data"
    DEPLOY_AGGREGATOR = "deploy_aggregator"
    DEPLOY_LEARNERS = "deploy_learners"
    BUILD_MODEL_IMAGE = "build_model_image"
    DEPLOY_INFERENCE = "deploy_inference"
    REMOVE_SERVICES = "remove_services"
    DELETE_PROJECT = "delete_project"


ROLES_OF_KIND: dict[ActionKind, tuple[Role, ...]] = {
    ActionKind.BUILD_IMAGES: (Role.BUILDER,),
    ActionKind.DEPLOY_DATA: (Role.MOCK_DATA_PROVIDER,),
    ActionKind.DEPLOY_AGGREGATOR: (Role.AGGREGATOR, Role.CLUSTER_AGGREGATOR),
    ActionKind.DEPLOY_LEARNERS: (Role.LEARNERS,),
    ActionKind.BUILD_MODEL_IMAGE: (Role.MODEL_BUILDER,),
    ActionKind.DEPLOY_INFERENCE: (Role.INFERENCE_SERVER,),
}
"""Roles of the services each creating action makes."""


NEEDS_TRACKING = frozenset({
    ActionKind.DEPLOY_AGGREGATOR, ActionKind.DEPLOY_INFERENCE, ActionKind.BUILD_MODEL_IMAGE,
})
"""Actions whose services talk to the MLflow tracking server."""


def service_name(project_id: str, role: Role, cluster: int | None = None) -> str:
    """Return the deterministic service name ``{project_id}-{role}[-{cluster index}]``."""
    base = f"{project_id}-{role.value.replace('_', '-')}"
    return base if cluster is None else f"{base}-{cluster}"


@dataclasses.dataclass(frozen=True)
class Action:
    """One idempotent step for the reconcile worker.

    ``roles`` is only used by ``remove_services``.
    """

    kind: ActionKind
    project_id: str
    roles: tuple[Role, ...] = ()

    @property
    def key(self) -> str:
        """Identity used to avoid queueing the same action twice."""
        suffix = ",".join(r.value for r in self.roles)
        return f"{self.kind.value}:{self.project_id}:{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "kind": self.kind.value,
            "project_id": self.project_id,
            "roles": [r.value for r in self.roles],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Action:
        """Build from the stored form."""
        return cls(
            kind=ActionKind(raw["kind"]),
            project_id=str(raw["project_id"]),
            roles=tuple(Role(r) for r in raw.get("roles", [])),
        )


def build_images(project_id: str) -> Action:
    """Start the image builder for the project's FL actors."""
    return Action(ActionKind.BUILD_IMAGES, project_id)


def with_tracking(actions: tuple[Action, ...]) -> tuple[Action, ...]:
    """``actions`` with ``deploy_tracking`` before the first one that needs the tracking server.

    The tracking server is shared and created idempotently (or is configured and nothing
    happens), so asking for it before every such action costs nothing.
    """
    for index, action in enumerate(actions):
        if action.kind in NEEDS_TRACKING:
            ensure = Action(ActionKind.DEPLOY_TRACKING, action.project_id)
            return (*actions[:index], ensure, *actions[index:])
    return actions


def remove_services(project_id: str, *roles: Role) -> Action:
    """Remove the project's services of ``roles`` (all project roles when none given)."""
    return Action(ActionKind.REMOVE_SERVICES, project_id, tuple(roles or PROJECT_ROLES))
