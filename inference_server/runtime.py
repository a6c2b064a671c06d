"""Run one inference server: load the model, open the port, serve until SIGTERM, report events."""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

import uvicorn

from flops_contracts.events import EventType
from flops_messaging import EventEmitter
from inference_server.app import AppContext, create_app
from inference_server.metadata import metadata_document
from inference_server.metrics import RequestMetrics
from inference_server.model_loader import ModelLoadError, ServedModel, load_served_model
from inference_server.settings import InferenceSettings, endpoint_url

logger = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    """Inference server exit codes (range 40-49); 0 means a clean shutdown."""

    OK = 0
    MODEL = 41
    LISTEN = 42
    INTERNAL = 49


class _NotifyingServer(uvicorn.Server):
    """A uvicorn server that calls ``on_started`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, *, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            await asyncio.to_thread(self._on_started)


def run_server(settings: InferenceSettings, emitter: EventEmitter) -> int:
    """Serve ``settings.model_uri`` until SIGTERM/SIGINT and return the exit code.

    Emits ``started`` once listening, ``completed`` after a graceful shutdown, and ``failed``
    (with ``stage`` ``model``, ``listen`` or ``serve``) when the server cannot run.
    """
    began = time.monotonic()
    try:
        served = load_served_model(settings.model_uri, tracking_uri=settings.tracking_uri)
    except ModelLoadError as exc:
        logger.error("%s", exc.message)
        emitter.emit(EventType.FAILED, reason=exc.message, stage="model",
                     model_uri=settings.model_uri)
        return ExitCode.MODEL
    logger.info("loaded %s in %.1f s", served.facts.loaded_uri, time.monotonic() - began)
    try:
        sock = open_listener(settings.host, settings.port)
    except OSError as exc:
        reason = f"cannot listen on {settings.listen_address}: {exc.strerror or exc}"
        logger.error("%s", reason)
        emitter.emit(EventType.FAILED, reason=reason, stage="listen",
                     model_uri=settings.model_uri)
        return ExitCode.LISTEN
    port = sock.getsockname()[1]
    url = endpoint_url(settings.host, int(port))
    metrics = RequestMetrics()
    received: list[int] = []
    try:
        with ThreadPoolExecutor(settings.inference_threads,
                                thread_name_prefix="inference") as executor:
            app = create_app(AppContext(
                predict=served.predict,
                signature=served.signature,
                metadata=metadata_document(served.facts, project_id=settings.project_id,
                                           instance=settings.instance),
                mlflow_version=served.facts.mlflow_version or "unknown",
                metrics=metrics,
                executor=executor,
                max_request_bytes=settings.max_request_bytes,
            ))
            server = _NotifyingServer(
                _uvicorn_config(app, settings),
                on_started=lambda: _announce(emitter, served, url=url, settings=settings),
            )
            with _remember_signals(received):
                server.run(sockets=[sock])
    except Exception as exc:
        reason = f"inference server error: {type(exc).__name__}: {exc}"
        logger.exception("%s", reason)
        emitter.emit(EventType.FAILED, reason=reason, stage="serve",
                     model_uri=settings.model_uri)
        return ExitCode.INTERNAL
    finally:
        sock.close()
    if not server.started:
        reason = "the HTTP server did not start; see the log"
        emitter.emit(EventType.FAILED, reason=reason, stage="serve",
                     model_uri=settings.model_uri)
        return ExitCode.INTERNAL
    snapshot = metrics.snapshot()
    emitter.emit(
        EventType.COMPLETED,
        reason=_signal_names(received) or "stopped",
        endpoint=url,
        model_uri=settings.model_uri,
        requests=sum(snapshot.requests.values()),
        rows_scored=snapshot.rows_scored,
        uptime_s=round(time.monotonic() - began, 3),
    )
    logger.info("stopped after %s request(s)", sum(snapshot.requests.values()))
    return ExitCode.OK


def open_listener(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (IPv6 when the host contains ``:``).

    Raises
    ------
    OSError
        If the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def _uvicorn_config(app: Any, settings: InferenceSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=settings.access_log,
        limit_concurrency=settings.max_concurrent_requests,
        timeout_graceful_shutdown=int(max(1, settings.shutdown_timeout_s)),
        server_header=False,
    )


def _announce(emitter: EventEmitter, served: ServedModel, *, url: str,
              settings: InferenceSettings) -> None:
    facts = served.facts
    logger.info("serving %s at %s", facts.loaded_uri, url)
    emitter.emit(
        EventType.STARTED,
        endpoint=url,
        model_uri=settings.model_uri,
        loaded_uri=facts.loaded_uri,
        model_name=facts.name,
        model_version=facts.version,
        run_id=facts.run_id,
    )


class _remember_signals:
    """Record SIGTERM/SIGINT instead of dying from them after uvicorn's graceful shutdown.

    uvicorn handles the signals while serving and re-raises them afterwards; the handler
    installed here turns that re-raise into a note, so the process can exit 0.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, received: list[int]) -> None:
        self.received = received
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._note)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _note(self, sig: int, frame: FrameType | None) -> None:
        if sig not in self.received:
            self.received.append(sig)


def _signal_names(signals: list[int]) -> str:
    return ",".join(signal.Signals(s).name for s in signals)
