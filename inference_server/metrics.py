"""Request counters and latency histograms, rendered as Prometheus text or JSON.

``RequestMetrics`` keeps them in ``prometheus_client`` metrics (thread-safe), which also render
the Prometheus text; the JSON view and quantile estimation are pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST
MODEL_LABELS = ("model_name", "model_version", "model_uri", "run_id")
"""Labels of the ``flops_inference_model_info`` gauge."""

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

    The values live in ``prometheus_client`` metrics of a registry of this object's own (no
    process-wide default registry), which :func:`render_prometheus` exposes; :meth:`snapshot`
    reads them back for the JSON view and the quantiles.

    Parameters
    ----------
    buckets
        Upper bounds of the latency histogram in seconds, ascending.
    """

    def __init__(self, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self._buckets = tuple(float(b) for b in buckets)
        self.registry = CollectorRegistry()
        self._model = Gauge("flops_inference_model_info",
                            "The served model (value is always 1).", list(MODEL_LABELS),
                            registry=self.registry)
        self._requests = Counter("flops_inference_requests",
                                 "HTTP requests by endpoint and status.", ["endpoint", "status"],
                                 registry=self.registry)
        self._latency = Histogram("flops_inference_request_duration_seconds",
                                  "Request latency by endpoint.", ["endpoint"],
                                  buckets=self._buckets, registry=self.registry)
        self._rows = Counter("flops_inference_rows_scored",
                             "Rows scored by successful invocations.", registry=self.registry)
        self._in_flight = Gauge("flops_inference_requests_in_flight",
                                "Requests being served now.", registry=self.registry)

    def set_model(self, info: Mapping[str, str | None]) -> None:
        """Label the ``flops_inference_model_info`` gauge with the served model."""
        self._model.clear()
        self._model.labels(**{k: "" if info.get(k) is None else str(info.get(k))
                              for k in MODEL_LABELS}).set(1)

    def request_started(self) -> None:
        """Count a request as in flight."""
        self._in_flight.inc()

    def observe(self, *, endpoint: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        self._in_flight.dec()
        self._requests.labels(endpoint=endpoint, status=str(status)).inc()
        self._latency.labels(endpoint=endpoint).observe(seconds)

    def add_rows(self, rows: int) -> None:
        """Count rows scored by successful ``/invocations`` requests."""
        self._rows.inc(rows)

    def snapshot(self) -> MetricsSnapshot:
        """Return a copy of the current values (each metric read once)."""
        requests: dict[tuple[str, int], int] = {}
        cumulative: dict[str, list[int]] = {}
        sums: dict[str, float] = {}
        rows = in_flight = 0
        for family in self.registry.collect():
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "flops_inference_requests_total":
                    requests[(labels["endpoint"], int(labels["status"]))] = int(sample.value)
                elif sample.name == "flops_inference_request_duration_seconds_bucket":
                    cumulative.setdefault(labels["endpoint"], []).append(int(sample.value))
                elif sample.name == "flops_inference_request_duration_seconds_sum":
                    sums[labels["endpoint"]] = float(sample.value)
                elif sample.name == "flops_inference_rows_scored_total":
                    rows = int(sample.value)
                elif sample.name == "flops_inference_requests_in_flight":
                    in_flight = int(sample.value)
        latency = {}
        for endpoint, counts in cumulative.items():
            per_bucket = tuple(c - p for p, c in zip([0, *counts[:-1]], counts, strict=True))
            latency[endpoint] = LatencyHistogram(per_bucket, counts[-1], sums.get(endpoint, 0.0))
        return MetricsSnapshot(buckets=self._buckets, requests=requests, latency=latency,
                               rows_scored=rows, in_flight=in_flight)


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


def render_prometheus(metrics: RequestMetrics) -> bytes:
    """The Prometheus text exposition of ``metrics`` (``prometheus_client`` renders it)."""
    return bytes(generate_latest(metrics.registry))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
