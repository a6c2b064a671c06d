"""``Server-Timing`` on every response: how long the manager itself spent on the request."""

from __future__ import annotations

import time

from flask import Flask, Response, g


def _start() -> None:
    g.flops_started = time.perf_counter()


def _stamp(response: Response) -> Response:
    started = g.get("flops_started")
    if started is not None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
    return response


def install_timing(app: Flask) -> None:
    """Time each request from before authentication to the response (install it first)."""
    app.before_request(_start)
    app.after_request(_stamp)
