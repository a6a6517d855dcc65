"""The verifier's own metrics: decisions, scan latency, cache hits, and how the view follows
its streams (lag, position, failures to apply, gaps, reloads).

Those a scan updates are hc_common.middleware's lock-free `Counter` and `Histogram` (the
scan path's; updated on the event loop's thread only); the others are prometheus_client's."""

import functools

from prometheus_client import Counter, Gauge

from hc_common import middleware as scan_path

DECISIONS = scan_path.Counter("verifier_decisions_total", "Scan decisions", ["decision", "reason"])
SCAN_LATENCY = scan_path.Histogram(
    "verifier_scan_duration_seconds",
    "Time to decide a scan (record on local disk included)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5),
)
STALE_ANSWERS = scan_path.Counter(
    "verifier_stale_answers_total",
    "Scans answered from a status kept in memory while health-records was unreachable "
    "(`stale: true`)",
)
CACHE = scan_path.Counter(
    "verifier_cache_lookups_total", "In-memory view lookups", ["kind", "result"]
)
EVENT_LAG = Gauge(
    "verifier_event_lag_seconds",
    "Age of the newest event applied from a stream when it was applied",
    ["stream"],
)
EVENTS_APPLIED = Counter("verifier_events_applied_total", "Events applied to the view", ["stream"])
STREAM_LIVE = Gauge(
    "verifier_stream_live",
    "1 while the stream is followed and its events are applied as they come",
    ["stream"],
)
STREAM_POSITION = Gauge(
    "verifier_stream_position", "Stream sequence of the last event applied to the view", ["stream"]
)
EVENT_APPLY_FAILURES = Counter(
    "verifier_event_apply_failures_total",
    "Attempts to apply an event that failed; the event is tried again, never skipped, and the "
    "stream's later events wait behind it",
    ["stream"],
)
STREAM_GAPS = Counter(
    "verifier_stream_gaps_total",
    "Events the stream's consumer did not deliver in sequence (a slow consumer's dropped "
    "messages): the stream is followed again from the last event applied",
    ["stream"],
)
VIEW_RELOADS = Counter(
    "verifier_view_reloads_total",
    "The stream's part of the view loaded again from its owner, events not yet applied being "
    "gone from the stream (its limits, or the stream made again)",
    ["stream"],
)


@functools.cache
def decision_counter(decision: str, reason: str) -> scan_path.Count:
    """The labelled child, looked up once (labels() costs a lock and a dict per call)."""
    return DECISIONS.labels(decision, reason)


@functools.cache
def cache_counter(kind: str, result: str) -> scan_path.Count:
    return CACHE.labels(kind, result)
