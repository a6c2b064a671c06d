"""Which broker topics a component of one project and role may publish on (pure).

A working broker login is bound to one project and one role; the broker enforces that it can
publish only on that project's event topics of the components the role runs as (its last-will
``lost`` event included, which goes to the same topic). Nothing else: no subscription, no other
project's topic, no other role's topic of its own project.
"""

from __future__ import annotations

from collections.abc import Mapping

from flops_contracts.events import Component
from flops_contracts.topics import PREFIX

ROLE_PUBLISHES: Mapping[str, frozenset[Component]] = {
    "builder": frozenset({Component.BUILDER}),
    "model_builder": frozenset({Component.BUILDER}),
    "mock_data_provider": frozenset({Component.MOCK_DATA_PROVIDER}),
    "aggregator": frozenset({Component.AGGREGATOR, Component.ROOT_AGGREGATOR}),
    "cluster_aggregator": frozenset({Component.CLUSTER_AGGREGATOR}),
    "learners": frozenset({Component.LEARNER}),
    "inference_server": frozenset({Component.INFERENCE_SERVER}),
}
"""Service role (``flops_manager.lifecycle.actions.Role`` values) -> components it runs as."""


def publish_topics(project_id: str, role: str) -> list[str]:
    """The topic filters a login of ``role`` in ``project_id`` may publish on.

    Raises
    ------
    KeyError
        For a role that publishes nothing.
    """
    return sorted(
        f"{PREFIX}/{project_id}/{component.value}/+/events"
        for component in ROLE_PUBLISHES[role]
    )


def role_name(project_id: str, role: str) -> str:
    """The broker-side role (group of ACLs) of ``role`` in ``project_id``."""
    return f"flops-{project_id}-{role}"


def username(project_id: str, role: str, grant_id: str, use: int) -> str:
    """The broker login of one enrolled instance (unique per exchange)."""
    return f"fc-{project_id}-{role}-{grant_id}-{use}"
