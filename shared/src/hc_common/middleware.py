"""Pure ASGI middleware (cheap enough for the scan path): request id, body size limit, metrics;
and the counters and histograms of hot paths (`Counter`, `Histogram`: prometheus_client's
interface, without its per-update lock)."""

import functools
import math
import random
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any

import prometheus_client
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hc_common.errors import problem_response
from hc_common.logging import request_id_var


class Count:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Observations:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # The first bucket whose upper bound is >= value, as prometheus_client's Histogram.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Labelled(Collector):
    """What `Counter` and `Histogram` share: children by label values, registration."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        if not self.labelnames:
            self._children[()] = self._new_child()  # shown from the start, as prometheus_client
        if registry is not None:
            registry.register(self)

    def _new_child(self) -> Any:
        raise NotImplementedError

    def _child(self, values: Iterable[object]) -> Any:
        key = tuple(str(value) for value in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {self.labelnames}, given {key}")
            child = self._children[key] = self._new_child()
        return child

    def _family(self) -> Metric:
        raise NotImplementedError

    def describe(self) -> Iterable[Metric]:
        return [self._family()]


class Counter(_Labelled):
    """prometheus_client's `Counter` as hot paths use it (`labels(...).inc()`, `inc()`),
    counting in plain Python floats: no lock and no checks per increment, which are most of
    prometheus_client's cost (~1 us of a scan's ~20). Updated from the event loop's thread
    only (ASGI middleware, async code); the registry reads it when scraped."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _new_child(self) -> Count:
        return Count()

    def labels(self, *values: object) -> Count:
        child: Count = self._child(values)
        return child

    def inc(self, amount: float = 1.0) -> None:
        self._children[()].inc(amount)

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for key, child in list(self._children.items()):
            family.add_metric(key, child.value, created=child.created)
        return [family]


class Histogram(_Labelled):
    """prometheus_client's `Histogram` as hot paths use it (`labels(...).observe(v)`,
    `observe(v)`), counting in plain Python like `Counter` (event loop's thread only)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = prometheus_client.Histogram.DEFAULT_BUCKETS,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.bounds = sorted(float(bound) for bound in buckets)
        if self.bounds[-1] != math.inf:
            self.bounds.append(math.inf)
        self._les = [floatToGoString(bound) for bound in self.bounds]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> Observations:
        return Observations(self.bounds)

    def labels(self, *values: object) -> Observations:
        child: Observations = self._child(values)
        return child

    def observe(self, value: float) -> None:
        self._children[()].observe(value)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for key, child in list(self._children.items()):
            cumulative = accumulate(child.counts)
            family.add_metric(key, list(zip(self._les, cumulative, strict=True)), child.sum)
            labels = dict(zip(self.labelnames, key, strict=True))
            family.add_sample(f"{self.name}_created", labels, child.created)
        return [family]


REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

MIB = 1024 * 1024
# A request body larger than this is refused (413) unless its path has a limit of its own.
DEFAULT_BODY_LIMIT = 4 * MIB


@functools.lru_cache(maxsize=4096)
def request_metrics(method: str, route: str, status: int) -> tuple[Any, Any]:
    """Labelled children, looked up once per route and status (labels() is not free)."""
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)


def new_request_id() -> str:
    """32 random hex digits (the shape of a UUID's hex, at a tenth of uuid4's cost): a
    request id ties log lines together, it is no secret, so `random` (seeded from the
    system, again after a fork) is enough."""
    return f"{random.getrandbits(128):032x}"


def request_id_of(header: bytes | None) -> str:
    """The request id a client sent in `X-Request-ID` (at most 64 characters), else a new one."""
    return header.decode("latin-1")[:64] if header else new_request_id()


def too_large(accept_language: str | None, limit: int) -> Response:
    """The 413 problem for a body over `limit` bytes."""
    return problem_response(
        accept_language,
        413,
        "payload_too_large",
        f"请求体不能超过 {limit // MIB} MiB",
        detail_en=f"The body may be at most {limit // MIB} MiB",
    )


class _TooLarge(StarletteHTTPException):
    """Raised from `receive` while streaming; an HTTPException so FastAPI passes it through."""

    def __init__(self) -> None:
        super().__init__(413)


class RequestContextMiddleware:
    """Binds a request id (from `X-Request-ID` or new), echoes it, and records metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                sent = value
                break
        request_id = request_id_of(sent)
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            counter, histogram = request_metrics(method, path, status)
            counter.inc()
            histogram.observe(time.perf_counter() - started)
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with a 413 problem, by Content-Length or while streaming."""

    def __init__(
        self,
        app: ASGIApp,
        default_limit: int = DEFAULT_BODY_LIMIT,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        accept_language = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    if int(value) > limit:
                        await self._refuse(scope, receive, send, accept_language, limit)
                        return
                except ValueError:
                    pass
            elif key == b"accept-language":
                accept_language = value.decode("latin-1")
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._refuse(scope, receive, send, accept_language, limit)

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, lang: str | None, limit: int
    ) -> None:
        await too_large(lang, limit)(scope, receive, send)
