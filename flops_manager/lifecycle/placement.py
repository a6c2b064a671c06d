"""Gather what a project's service specs depend on from the orchestrator and the settings."""

from __future__ import annotations

from flops_manager.lifecycle.service_specs import TRACKING_SERVICE, Placement, tracking_server_spec
from flops_manager.lifecycle.state import Project
from flops_manager.ports.errors import TemporaryError
from flops_manager.ports.orchestrator import BuildTarget, Orchestrator
from flops_manager.settings import Settings


class Resolve:
    """Callable service-name -> ``host:port`` lookup through an orchestrator."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    def __call__(self, name: str) -> str:
        """Return ``name``'s ``host:port``."""
        address = self.orchestrator.service_address(name)
        if address is None:
            raise TemporaryError(f"service {name} has no address yet")
        return address


def ensure_tracking_server(orchestrator: Orchestrator, settings: Settings) -> None:
    """Create the shared MLflow server unless one is configured (idempotent).

    Run as the ``deploy_tracking`` action, before every action that needs the server.
    """
    if not settings.tracking_uri:
        orchestrator.create_service(tracking_server_spec(settings))


def tracking_uri(orchestrator: Orchestrator, settings: Settings) -> str:
    """The configured MLflow server, or the address of the shared one the manager started.

    Raises
    ------
    TemporaryError
        While the shared server has no address (not created yet, or starting).
    """
    if settings.tracking_uri:
        return settings.tracking_uri
    return f"http://{Resolve(orchestrator)(TRACKING_SERVICE)}"


def build_target(orchestrator: Orchestrator, settings: Settings) -> BuildTarget:
    """What the builder makes: the backend's choice unless the settings override it."""
    if settings.build_target is not None:
        return BuildTarget(settings.build_target)
    return orchestrator.build_target


def placement(
    orchestrator: Orchestrator, settings: Settings, project: Project, *, tracking: bool
) -> Placement:
    """The :class:`Placement` of ``project``'s services (with the tracking server's URI if asked).

    Reads only: services it refers to (the tracking server) are created by earlier actions.
    """
    return Placement(
        target=build_target(orchestrator, settings),
        events_uri=settings.component_events_uri,
        tracking_uri=tracking_uri(orchestrator, settings) if tracking else None,
        clusters=project.clusters,
        resolve=Resolve(orchestrator),
    )
