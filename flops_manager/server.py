"""Run the manager: API server, MQTT listener and reconcile worker in one process.

Start with ``python -m flops_manager``. Settings come from ``FLOPS_*`` variables (see
:mod:`flops_manager.settings`); without ``FLOPS_MONGO_URL`` an embedded nx-27017 server is
started under ``FLOPS_DATA_DIR`` and stopped on exit.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

from flops_contracts.errors import FlopsError
from flops_contracts.telemetry import disable_telemetry
from flops_manager import registry
from flops_manager import settings as settings_module
from flops_manager.adapters.mqtt_listener import MqttEventSource
from flops_manager.adapters.nx_launcher import EmbeddedMongo
from flops_manager.api_server import ApiServer
from flops_manager.app import create_app
from flops_manager.dependency_names import host_names, wait_for_names
from flops_manager.identity.enrollment import Enrollment, default_api_url
from flops_manager.lifecycle.wakeup import waking
from flops_manager.lifecycle.worker import ReconcileWorker
from flops_manager.services.ingest import EventIngest

log = logging.getLogger("flops_manager")


def main() -> int:
    """Run until SIGTERM or SIGINT; return the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    disable_telemetry(os.environ)  # inherited by the components it starts as local processes
    embedded: EmbeddedMongo | None = None
    try:
        settings = settings_module.load()
        if settings.embedded_database:
            embedded = EmbeddedMongo(settings.data_dir)
            settings = settings.model_copy(update={
                "mongo_url": embedded.start(),
                "allow_local_repos": settings.local_repos_allowed,  # decided as embedded
            })
        # only what the manager itself connects to (FLOPS_TRACKING_URI is the components')
        wait_for_names(host_names({
            "FLOPS_MONGO_URL": settings.mongo_url, "FLOPS_MQTT_URL": settings.mqtt_url,
        }), timeout_s=settings.dependency_names_timeout_s)
        store = registry.build_store(settings)
        orchestrator = registry.build_orchestrator(settings)
        orchestrator.preflight()
        events = (
            MqttEventSource(settings.mqtt_url, client_id=settings.mqtt_client_id,
                            username=settings.mqtt_username, password=settings.mqtt_password)
            if settings.mqtt_url
            else None
        )
        enrollment = Enrollment(store, settings,
                                broker=registry.build_broker_accounts(settings))
        worker = ReconcileWorker(store, orchestrator, settings, enrollment=enrollment,
                                 hearing_since=None if events is None else events.heard_since)
        app = create_app(settings, store=store, orchestrator=orchestrator, events=events,
                         enrollment=enrollment,
                         wake=worker.wake if settings.reconcile_on_events else None)
    except FlopsError as exc:
        log.error("cannot start: %s", exc.message)
        if embedded is not None:
            embedded.stop()
        return 2
    server = ApiServer(app, host=settings.host, port=settings.port, threads=settings.api_threads)
    def _shutdown(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)  # in the main thread: ends server.serve(), then the cleanup below

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    started = False
    try:
        try:
            port = server.bind()
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
            return 2
        started = True
        enrollment.api_url = default_api_url(settings, port)  # the port bound (FLOPS_PORT=0)
        worker.start()  # first: recovers projects whose processes a restart lost
        if events is not None:
            ingest = EventIngest(store).handle
            events.start(waking(ingest, worker.wake) if settings.reconcile_on_events else ingest)
        log.info("FLOps manager listening on http://%s:%s", settings.host, port)
        server.serve()
    finally:
        worker.stop()
        if events is not None and started:
            events.stop()
        store.close()
        orchestrator.close()
        if embedded is not None:
            embedded.stop()
    return 0
