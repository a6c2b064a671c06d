"""Access to the per-app service container and the authenticated user from views."""

from __future__ import annotations

import dataclasses

from flask import current_app, g

from flops_manager.identity.enrollment import Enrollment
from flops_manager.identity.registry_server import RegistryTokenServer
from flops_manager.nodes.service import NodeService
from flops_manager.ports.auth import Authenticator
from flops_manager.ports.event_source import EventSource
from flops_manager.ports.project_store import ProjectStore
from flops_manager.services.logs import LogService
from flops_manager.services.mock_data import MockDataService
from flops_manager.services.models import ModelService
from flops_manager.services.projects import ProjectService
from flops_manager.services.stream_slots import StreamSlots
from flops_manager.settings import Settings

EXTENSION = "flops"


@dataclasses.dataclass(frozen=True)
class Services:
    """Everything views need, built once per app by ``create_app``."""

    settings: Settings
    store: ProjectStore
    events: EventSource | None
    authenticator: Authenticator
    projects: ProjectService
    mock_data: MockDataService
    models: ModelService
    logs: LogService
    enrollment: Enrollment
    registry_tokens: RegistryTokenServer
    streams: StreamSlots
    nodes: NodeService


def services() -> Services:
    """Return the current app's services."""
    found = current_app.extensions[EXTENSION]
    if not isinstance(found, Services):
        raise TypeError(f"app.extensions[{EXTENSION!r}] holds {type(found).__name__}")
    return found


def current_user() -> str:
    """Return the authenticated user of this request."""
    return str(g.flops_user)
