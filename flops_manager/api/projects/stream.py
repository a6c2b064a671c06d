"""Server-Sent Events stream of a project's events, bounded in time, with keepalives."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from flops_manager.api.projects.views import event_view
from flops_manager.ports.project_store import ProjectStore


def sse_events(
    store: ProjectStore,
    project_id: str,
    *,
    after: int,
    keepalive_s: float,
    max_s: float,
    poll_s: float,
    stop: threading.Event | None = None,
) -> Iterator[str]:
    """Yield SSE frames for events with ``seq > after`` until ``max_s`` elapsed.

    Each frame carries ``id: <seq>`` so a client can resume with ``Last-Event-ID``.
    """
    halt = stop or threading.Event()
    started = last_sent = time.monotonic()
    yield "retry: 2000\n\n"
    while not halt.is_set():
        batch = store.list_events(project_id, after_seq=after, limit=200)
        for stored in batch:
            after = stored.seq
            payload = json.dumps(event_view(stored), separators=(",", ":"))
            yield f"id: {stored.seq}\nevent: event\ndata: {payload}\n\n"
            last_sent = time.monotonic()
        now = time.monotonic()
        if now - started >= max_s:
            yield "event: end\ndata: {\"reason\": \"max duration reached\"}\n\n"
            return
        if now - last_sent >= keepalive_s:
            yield ": keepalive\n\n"
            last_sent = now
        if not batch:
            halt.wait(min(poll_s, max(0.0, max_s - (now - started))))
