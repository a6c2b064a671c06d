"""The HTTP API: MLflow's scoring protocol plus ``/metadata`` and ``/metrics`` (Starlette).

Routes stay thin: scoring runs in the given thread pool, errors become JSON bodies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference_server.errors import RequestError, error_code
from inference_server.metrics import RequestMetrics, render_json, render_prometheus
from inference_server.payload import media_type
from inference_server.scoring import Predict, score
from inference_server.validation import InputSignature

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENDPOINTS = ("/ping", "/health", "/version", "/invocations", "/metadata", "/metrics")


@dataclasses.dataclass(frozen=True)
class AppContext:
    """Everything the routes need, built once by the caller."""

    predict: Predict
    signature: InputSignature | None
    metadata: Mapping[str, Any]
    mlflow_version: str
    metrics: RequestMetrics
    executor: Executor
    max_request_bytes: int


def create_app(context: AppContext) -> Starlette:
    """Build the ASGI application serving one model.

    Parameters
    ----------
    context
        The model, its metadata, the metrics store and the thread pool for scoring.

    Returns
    -------
    Starlette
        With ``GET /ping``, ``/health``, ``/version``, ``/metadata``, ``/metrics`` and
        ``POST /invocations``; every error is a JSON body ``{error_code, status, message}``.
    """
    routes = [
        Route("/ping", _ping, methods=["GET"]),
        Route("/health", _ping, methods=["GET"]),
        Route("/version", functools.partial(_version, context), methods=["GET"]),
        Route("/invocations", functools.partial(_invocations, context), methods=["POST"]),
        Route("/metadata", functools.partial(_metadata, context), methods=["GET"]),
        Route("/metrics", functools.partial(_metrics, context), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.add_middleware(MetricsMiddleware, metrics=context.metrics)
    return app


async def _ping(request: Request) -> Response:
    return Response("\n", media_type="application/json")


async def _version(context: AppContext, request: Request) -> Response:
    return Response(context.mlflow_version, media_type="application/json")


async def _metadata(context: AppContext, request: Request) -> Response:
    return JSONResponse(dict(context.metadata))


async def _metrics(context: AppContext, request: Request) -> Response:
    snapshot = context.metrics.snapshot()
    wants_json = (request.query_params.get("format") == "json"
                  or "application/json" in request.headers.get("accept", ""))
    if wants_json:
        return JSONResponse(render_json(snapshot))
    info = {key: _text(context.metadata.get(key))
            for key in ("model_name", "model_version", "model_uri", "run_id")}
    return Response(render_prometheus(snapshot, info=info), media_type=PROMETHEUS_CONTENT_TYPE)


async def _invocations(context: AppContext, request: Request) -> Response:
    content_type = request.headers.get("content-type")
    try:
        media_type(content_type)  # 415 before reading a body we cannot use
        body = await read_limited_body(request, context.max_request_bytes)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            context.executor,
            functools.partial(score, body=body, content_type=content_type,
                              signature=context.signature, predict=context.predict),
        )
    except RequestError as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status)
    context.metrics.add_rows(result.rows)
    return Response(result.body, media_type="application/json")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing more than ``limit`` bytes.

    Raises
    ------
    RequestError
        413 as soon as the declared or received size exceeds ``limit``.
    """
    too_large = RequestError(
        f"the request body exceeds the limit of {limit} bytes; send fewer rows per request "
        "(or raise FLOPS_MAX_REQUEST_BYTES on the server)",
        status=413,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise exc
    if exc.status_code == 404:
        message = f"no endpoint {request.url.path}; use one of {', '.join(ENDPOINTS)}"
    elif exc.status_code == 405:
        message = (f"{request.method} is not allowed on {request.url.path}; "
                   "use POST for /invocations and GET for the others")
    else:
        message = str(exc.detail)
    return JSONResponse({"error_code": error_code(exc.status_code), "status": exc.status_code,
                         "message": message}, status_code=exc.status_code,
                        headers=dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this response, so the server logs the traceback once.
    return JSONResponse({"error_code": error_code(500), "status": 500,
                         "message": "internal error; see the server log"}, status_code=500)


class MetricsMiddleware:
    """ASGI middleware that counts every HTTP request by endpoint and status, with latency.

    Unknown paths are counted as endpoint ``other`` so that metrics keep a bounded size.
    """

    def __init__(self, app: ASGIApp, *, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request and record it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        status = 500
        started = time.perf_counter()
        self.metrics.request_started()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.observe(endpoint=endpoint, status=status,
                                 seconds=time.perf_counter() - started)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)

