"""The verifier's own metrics: decisions, scan latency, cache hits, event lag."""

import functools

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter("verifier_decisions_total", "Scan decisions", ["decision", "reason"])
SCAN_LATENCY = Histogram(
    "verifier_scan_duration_seconds",
    "Time to decide a scan (record on local disk included)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5),
)
CACHE = Counter("verifier_cache_lookups_total", "In-memory view lookups", ["kind", "result"])
EVENT_LAG = Gauge(
    "verifier_event_lag_seconds",
    "Age of the newest event applied from a stream when it was applied",
    ["stream"],
)
EVENTS_APPLIED = Counter("verifier_events_applied_total", "Events applied to the view", ["stream"])
STREAM_LIVE = Gauge("verifier_stream_live", "1 while the stream is followed", ["stream"])


@functools.cache
def decision_counter(decision: str, reason: str) -> Counter:
    """The labelled child, looked up once (labels() costs a lock and a dict per call)."""
    return DECISIONS.labels(decision, reason)


@functools.cache
def cache_counter(kind: str, result: str) -> Counter:
    return CACHE.labels(kind, result)
