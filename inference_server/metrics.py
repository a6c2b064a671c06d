"""Request counters and latency histograms, rendered as Prometheus text or JSON.

``RequestMetrics`` holds the state (thread-safe); rendering and quantile estimation are pure.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

# Seconds; the last bucket is +Inf.
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclasses.dataclass(frozen=True)
class LatencyHistogram:
    """Cumulative-free bucket counts (one per bound plus +Inf), count and sum of seconds."""

    counts: tuple[int, ...]
    count: int
    total_s: float


@dataclasses.dataclass(frozen=True)
class MetricsSnapshot:
    """A consistent copy of all metrics at one moment."""

    buckets: tuple[float, ...]
    requests: Mapping[tuple[str, int], int]
    latency: Mapping[str, LatencyHistogram]
    rows_scored: int
    in_flight: int


class RequestMetrics:
    """Counts requests per (endpoint, status) and their latency per endpoint.

    Parameters
    ----------
    buckets
        Upper bounds of the latency histogram in seconds, ascending.
    """

    def __init__(self, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self._buckets = tuple(buckets)
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._rows = 0
        self._in_flight = 0

    def request_started(self) -> None:
        """Count a request as in flight."""
        with self._lock:
            self._in_flight += 1

    def observe(self, *, endpoint: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        index = bisect.bisect_left(self._buckets, seconds)
        with self._lock:
            self._in_flight -= 1
            key = (endpoint, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            counts = self._counts.setdefault(endpoint, [0] * (len(self._buckets) + 1))
            counts[index] += 1
            self._sums[endpoint] = self._sums.get(endpoint, 0.0) + seconds

    def add_rows(self, rows: int) -> None:
        """Count rows scored by successful ``/invocations`` requests."""
        with self._lock:
            self._rows += rows

    def snapshot(self) -> MetricsSnapshot:
        """Return a copy of the current values."""
        with self._lock:
            return MetricsSnapshot(
                buckets=self._buckets,
                requests=dict(self._requests),
                latency={
                    endpoint: LatencyHistogram(tuple(counts), sum(counts), self._sums[endpoint])
                    for endpoint, counts in self._counts.items()
                },
                rows_scored=self._rows,
                in_flight=self._in_flight,
            )


def quantile(buckets: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """Estimate the ``q`` quantile from histogram bucket counts (linear within a bucket).

    Parameters
    ----------
    buckets
        Upper bounds, ascending; ``counts`` has one more entry, for +Inf.
    counts
        Observations per bucket (not cumulative).
    q
        Quantile in [0, 1].

    Returns
    -------
    float | None
        Seconds; ``None`` without observations. Values in the +Inf bucket report the largest
        finite bound.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(buckets):
                return float(buckets[-1])
            lower = buckets[index - 1] if index > 0 else 0.0
            upper = buckets[index]
            return float(lower + (upper - lower) * max(rank - seen, 0.0) / count)
        seen += count
    return float(buckets[-1])


def render_json(snapshot: MetricsSnapshot) -> dict[str, Any]:
    """Render metrics as JSON: requests per endpoint/status, latency count/sum/p50/p99."""
    requests: dict[str, dict[str, int]] = {}
    for (endpoint, status), count in sorted(snapshot.requests.items()):
        requests.setdefault(endpoint, {})[str(status)] = count
    latency = {
        endpoint: {
            "count": hist.count,
            "sum_s": round(hist.total_s, 6),
            "p50_s": _rounded(quantile(snapshot.buckets, hist.counts, 0.5)),
            "p99_s": _rounded(quantile(snapshot.buckets, hist.counts, 0.99)),
        }
        for endpoint, hist in sorted(snapshot.latency.items())
    }
    return {"requests": requests, "latency": latency, "rows_scored": snapshot.rows_scored,
            "in_flight": snapshot.in_flight}


def render_prometheus(snapshot: MetricsSnapshot, *, info: Mapping[str, str | None]) -> str:
    """Render metrics in the Prometheus text exposition format (version 0.0.4).

    Parameters
    ----------
    snapshot
        The values to render.
    info
        Labels of the ``flops_inference_model_info`` gauge (model name, version, ...).
    """
    lines = [
        "# HELP flops_inference_model_info The served model (value is always 1).",
        "# TYPE flops_inference_model_info gauge",
        f"flops_inference_model_info{_labels(info)} 1",
        "# HELP flops_inference_requests_total HTTP requests by endpoint and status.",
        "# TYPE flops_inference_requests_total counter",
    ]
    for (endpoint, status), count in sorted(snapshot.requests.items()):
        labels = _labels({"endpoint": endpoint, "status": str(status)})
        lines.append(f"flops_inference_requests_total{labels} {count}")
    lines += [
        "# HELP flops_inference_request_duration_seconds Request latency by endpoint.",
        "# TYPE flops_inference_request_duration_seconds histogram",
    ]
    for endpoint, hist in sorted(snapshot.latency.items()):
        cumulative = 0
        bounds = [*(_number(b) for b in snapshot.buckets), "+Inf"]
        for bound, count in zip(bounds, hist.counts, strict=True):
            cumulative += count
            labels = _labels({"endpoint": endpoint, "le": bound})
            lines.append(f"flops_inference_request_duration_seconds_bucket{labels} {cumulative}")
        base = _labels({"endpoint": endpoint})
        lines.append(f"flops_inference_request_duration_seconds_sum{base} {hist.total_s:.6f}")
        lines.append(f"flops_inference_request_duration_seconds_count{base} {hist.count}")
    lines += [
        "# HELP flops_inference_rows_scored_total Rows scored by successful invocations.",
        "# TYPE flops_inference_rows_scored_total counter",
        f"flops_inference_rows_scored_total {snapshot.rows_scored}",
        "# HELP flops_inference_requests_in_flight Requests being served now.",
        "# TYPE flops_inference_requests_in_flight gauge",
        f"flops_inference_requests_in_flight {snapshot.in_flight}",
    ]
    return "\n".join(lines) + "\n"


def _labels(values: Mapping[str, str | None]) -> str:
    parts = []
    for key, value in values.items():
        text = "" if value is None else str(value)
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{key}="{text}"')
    return "{" + ",".join(parts) + "}"


def _number(value: float) -> str:
    return repr(float(value))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
