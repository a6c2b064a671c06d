"""Application factory: builds adapters once and injects them into services and views."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask_smorest import Api

from flops_contracts.errors import ConfigError
from flops_manager import registry
from flops_manager.adapters.oakestra_auth import OakestraAuthenticator
from flops_manager.adapters.static_tokens import StaticTokenAuthenticator, parse_tokens
from flops_manager.api import docs_assets, register_blueprints
from flops_manager.api.auth import install_auth
from flops_manager.api.context import EXTENSION, Services
from flops_manager.api.errors import register_error_handlers
from flops_manager.api.openapi import document, openapi_config
from flops_manager.api.timing import install_timing
from flops_manager.identity.enrollment import Enrollment
from flops_manager.identity.registry_server import RegistryTokenServer
from flops_manager.nodes.service import NodeService
from flops_manager.ports.auth import Authenticator
from flops_manager.ports.event_source import EventSource
from flops_manager.ports.node_store import NodeStore
from flops_manager.ports.orchestrator import Orchestrator
from flops_manager.ports.project_store import ProjectStore
from flops_manager.services.logs import LogService
from flops_manager.services.mock_data import MockDataService
from flops_manager.services.models import ModelService
from flops_manager.services.projects import ProjectService
from flops_manager.services.stream_slots import StreamLimits, StreamSlots
from flops_manager.settings import Settings


def build_authenticator(settings: Settings) -> Authenticator:
    """Return the authenticator selected by ``FLOPS_AUTH_MODE``.

    Raises
    ------
    ConfigError
        If the chosen mode lacks its settings.
    """
    if settings.auth_mode == "oakestra":
        if not settings.oakestra_url:
            raise ConfigError("FLOPS_AUTH_MODE=oakestra needs FLOPS_OAKESTRA_URL")
        return OakestraAuthenticator(settings.oakestra_url, ttl_s=settings.auth_cache_ttl_s)
    tokens = parse_tokens(settings.api_tokens)
    if not tokens:
        raise ConfigError('set FLOPS_API_TOKENS to a JSON object {"token": "username"}')
    return StaticTokenAuthenticator(tokens)


def stream_limits(settings: Settings) -> StreamLimits:
    """The event stream limits ``settings`` ask for."""
    return StreamLimits(
        per_owner=settings.sse_streams_per_owner,
        total=settings.max_streams,
        max_s=settings.sse_max_s,
        grace_s=settings.sse_keepalive_s + settings.sse_poll_s,
    )


def create_app(
    settings: Settings,
    *,
    store: ProjectStore | None = None,
    orchestrator: Orchestrator | None = None,
    events: EventSource | None = None,
    authenticator: Authenticator | None = None,
    enrollment: Enrollment | None = None,
    nodes: NodeStore | None = None,
    wake: Callable[[], None] | None = None,
) -> Flask:
    """Create the manager's Flask app.

    Parameters
    ----------
    settings
        Manager settings.
    store, orchestrator, events, authenticator
        Adapters to use; missing ones are built from ``settings`` (events: none).
    enrollment
        The components' enrollment (shared with the reconcile worker; default: one on
        ``store`` with the broker accounts of ``settings``).
    nodes
        The node store (default: next to the project store, from ``settings``).
    wake
        Runs the reconciler's next pass now (called when a project is created, cancelled
        or deleted; default: nothing, the reconciler's interval decides).
    """
    store = store or registry.build_store(settings)
    orchestrator = orchestrator or registry.build_orchestrator(settings)
    enrollment = enrollment or Enrollment(
        store, settings, broker=registry.build_broker_accounts(settings)
    )
    authenticator = authenticator or build_authenticator(settings)
    registry_tokens = RegistryTokenServer(store, settings, keys=enrollment.registry_keys,
                                          authenticator=authenticator, clock=enrollment.clock)
    node_service = NodeService(nodes or registry.build_node_store(settings))
    projects = ProjectService(store, allow_local_repos=settings.local_repos_allowed,
                              nodes=node_service, on_change=wake)
    app = Flask("flops_manager")
    app.config.update(openapi_config(settings))
    app.extensions[EXTENSION] = Services(
        settings=settings,
        store=store,
        events=events,
        authenticator=authenticator,
        projects=projects,
        mock_data=MockDataService(store, orchestrator, settings=settings),
        models=ModelService(store, projects),
        logs=LogService(orchestrator, projects),
        enrollment=enrollment,
        registry_tokens=registry_tokens,
        streams=StreamSlots(stream_limits(settings)),
        nodes=node_service,
    )
    app.register_blueprint(docs_assets.blueprint)
    api = Api(app)
    document(api)
    register_blueprints(api)
    register_error_handlers(app)
    install_timing(app)  # first: the timing includes authentication
    install_auth(app)
    return app
