"""Follow a project's event stream and render it as progress lines (``watch`` and ``demo``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flops_manager.cli.client import ApiClient, ApiError
from flops_manager.lifecycle.state import TERMINAL_PHASES, Phase

BAR_WIDTH = 24
STOP_PHASES = frozenset({*(p.value for p in TERMINAL_PHASES), Phase.SERVING.value})
"""Phases where watching ends (``serving`` keeps running but training is over)."""


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """Return ``[#####-----]`` for ``done`` of ``total``."""
    total = max(total, 1)
    filled = min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _metric(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return f"{name} {value:.3f}" if isinstance(value, int | float) else ""


def describe(event: dict[str, Any]) -> str | None:
    """Return a line for a stored event worth showing, ``None`` for the rest."""
    body = event["event"]
    kind, component, data = body["event"], body["component"], body.get("data") or {}
    instance = body.get("instance", "")
    if kind == "phase_changed":
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"phase: {data.get('from')} -> {data.get('to')}{reason}"
    if kind == "round_completed" and component in ("aggregator", "root_aggregator"):
        metrics = data.get("metrics") or {}
        numbers = "  ".join(x for x in (_metric(metrics, "accuracy"), _metric(metrics, "loss"))
                            if x)
        rnd, total = int(data.get("round", 0)), int(data.get("total_rounds") or 0)
        return f"round {rnd}/{total or '?'} {progress_bar(rnd, total or rnd)} {numbers}".rstrip()
    if kind in ("failed", "lost", "learner_failed"):
        reason = data.get("reason") or data.get("message") or data.get("error") or ""
        line = f"{component} {instance} {kind}: {reason}".rstrip(": ")
        if kind == "lost" and "connection" in data:  # a last will, honoured after a grace
            line += f" (connection {data['connection']}; counts unless it reconnects)"
        return line
    if kind == "progress" and component == "builder" and data.get("state") == "done":
        return f"build step {data.get('step')}: {data.get('seconds')} s"
    if kind == "completed" and component == "builder":
        hit = " (cached environment)" if data.get("cache_hit") else ""
        return f"build completed{hit}"
    if kind == "completed" and component == "mock_data_provider":
        return f"mock data ready: {len(data.get('partitions') or [])} partitions"
    return None


FINAL_EVENTS = frozenset({"completed", "failed"})


def progress_lines(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The lines :func:`describe` gives, minus last wills of instances that were done.

    A component that reported ``completed`` (or ``failed``) and is then stopped may drop its
    broker connection without a goodbye; its last will is no news to the reader.
    """
    done: set[tuple[str, str]] = set()
    for event in events:
        body = event["event"]
        who = (body["component"], body.get("instance", ""))
        if body["event"] in FINAL_EVENTS:
            done.add(who)
        elif body["event"] == "lost" and who in done:
            continue
        if (line := describe(event)) is not None:
            yield line


def follow(
    client: ApiClient,
    project_id: str,
    *,
    timeout_s: float,
    after: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[dict[str, Any]]:
    """Yield the project's events live until its phase is final or ``serving``.

    The server ends each stream after a while; this reconnects from the last event seen.

    Raises
    ------
    ApiError
        If ``timeout_s`` passes first (naming the phase the project was in).
    """
    deadline = clock() + timeout_s
    last = after
    while True:
        project = client.request("GET", f"projects/{project_id}")
        seen_stop = False
        try:
            for event in client.stream_events(project_id, after=last):
                last = int(event["seq"])
                yield event
                body = event["event"]
                if body["event"] == "phase_changed" and body["data"].get("to") in STOP_PHASES:
                    seen_stop = True
                    break
                if clock() > deadline:
                    break
        except ApiError:
            time.sleep(1.0)  # the manager restarted or the network blinked: reconnect
        project = client.request("GET", f"projects/{project_id}")
        if seen_stop or project["phase"] in STOP_PHASES:
            # drain what was stored up to the final phase change
            yield from _rest(client, project_id, last)
            return
        if clock() > deadline:
            raise ApiError(f"gave up watching project {project_id} after {timeout_s:.0f} s; "
                           f"it is still in phase {project['phase']!r}")


def _rest(client: ApiClient, project_id: str, after: int) -> Iterator[dict[str, Any]]:
    page = client.request("GET", f"projects/{project_id}/events",
                          params={"after": after, "limit": 1000})
    yield from page["items"]
