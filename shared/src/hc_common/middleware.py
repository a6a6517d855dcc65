"""Pure ASGI middleware (cheap enough for the scan path): request id, body size limit, metrics."""

import functools
import time
import uuid
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hc_common.errors import problem_response
from hc_common.logging import request_id_var

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

MIB = 1024 * 1024


@functools.lru_cache(maxsize=4096)
def _request_metrics(method: str, route: str, status: int) -> tuple[Any, Any]:
    """Labelled children, looked up once per route and status (labels() is not free)."""
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)


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
        request_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
                break
        request_id = request_id or uuid.uuid4().hex
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
            counter, histogram = _request_metrics(method, path, status)
            counter.inc()
            histogram.observe(time.perf_counter() - started)
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with a 413 problem, by Content-Length or while streaming."""

    def __init__(
        self, app: ASGIApp, default_limit: int = 4 * MIB, limits: dict[str, int] | None = None
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
        response = problem_response(
            lang,
            413,
            "payload_too_large",
            f"请求体不能超过 {limit // MIB} MiB",
            detail_en=f"The body may be at most {limit // MIB} MiB",
        )
        await response(scope, receive, send)
