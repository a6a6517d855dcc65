"""The application factory every service uses: errors, middleware, operations routes, the
API's documentation pages (served offline), CORS for the staff page's origins, and direct
routes for a hot path (`ServiceApp`)."""

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from hc_common.errors import Problem, install_error_handlers
from hc_common.health import router as health_router
from hc_common.logging import request_id_var
from hc_common.middleware import (
    DEFAULT_BODY_LIMIT,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    request_id_of,
    request_metrics,
    too_large,
)
from hc_common.settings import ServiceSettings

# Swagger UI's and ReDoc's files as the fastapi-offline package ships them; served under
# DOCS_ASSETS so that /docs and /redoc need nothing from outside (no CDN).
DOCS_ASSETS = "/docs-assets"
_DOCS_FILES = Path(fastapi_offline.__file__).parent / "static"
# What the staff page sends to the issuer and venue-admin from its own origin.
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "Accept-Language"]

_PROBLEM_TEXTS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    422: "Validation error",
    429: "Too many requests (see Retry-After)",
    503: "Service unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problem+json answers an operation can give, e.g.
    `responses=problem_responses(409, 429)` on a route."""
    return {
        status: {
            "model": Problem,
            "content": {"application/problem+json": {}},
            "description": _PROBLEM_TEXTS[status],
        }
        for status in statuses
    }


# What any operation may answer (auth, unknown ids, body size, validation).
PROBLEM_RESPONSES = problem_responses(401, 403, 404, 413, 422)


# A direct route's endpoint, given the app, the request's headers (names in lower case; of a
# repeated header, the first) and its whole body (read within the route's size limit): the
# JSON body of its 200 answer, or an exception, answered by the app's exception handlers as on
# any other route.
DirectEndpoint = Callable[["ServiceApp", dict[bytes, bytes], bytes], Awaitable[bytes]]


class ServiceApp(FastAPI):
    """FastAPI, plus *direct routes*: `POST` paths of a hot path (the scan) answered by a
    plain ASGI dispatch in front of FastAPI's middleware stack, routing and per-request
    machinery. Those cost several times what the scan itself costs (profile in
    docs/scaling.md; `python -m tests.bench verifier`).

    A direct route keeps what the stack gives a request: the request id (`X-Request-ID`,
    bound for the logs, echoed), the metrics by route and status, the body size limit (413
    problem), errors answered by the app's exception handlers (problem+json, 422 with its
    `errors`, 500 `internal_error` logged). A request with an `Origin` header (a browser:
    CORS) and any other method take the full stack; so the route is also declared as an
    ordinary route, which documents it (OpenAPI) and answers those."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct_routes: dict[str, tuple[DirectEndpoint, int]] = {}

    def add_direct_route(self, path: str, endpoint: DirectEndpoint, body_limit: int) -> None:
        self.direct_routes[path] = (endpoint, body_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            direct = self.direct_routes.get(scope["path"])
            if direct is not None:
                headers = dict(reversed(scope["headers"]))  # the first of a repeated header
                if b"origin" not in headers:
                    await self._direct(direct, scope, receive, send, headers)
                    return
        await super().__call__(scope, receive, send)

    async def _direct(
        self,
        direct: tuple[DirectEndpoint, int],
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
    ) -> None:
        started = time.perf_counter()
        request_id = request_id_of(headers.get(b"x-request-id"))
        context = request_id_var.set(request_id)
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        scope["app"] = self
        endpoint, limit = direct
        status = 500  # as RequestContextMiddleware counts a request never answered
        try:
            response: Response | None = None
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                response = too_large(header_text(headers.get(b"accept-language")), limit)
            else:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away before its body was whole: no answer
                body: bytes | None = message.get("body", b"")
                if message.get("more_body", False):  # a body in parts: read them, counting
                    try:
                        body = await _whole_body(receive, message.get("body", b""), limit)
                    except _ClientGone:
                        return
                if body is None or len(body) > limit:
                    response = too_large(header_text(headers.get(b"accept-language")), limit)
                else:
                    try:
                        payload = await endpoint(self, headers, body)
                    except Exception as exc:
                        response = await self._handled(exc, scope, receive)
                    else:
                        await send(
                            {
                                "type": "http.response.start",
                                "status": 200,
                                "headers": [
                                    (b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode()),
                                    request_id_header,
                                ],
                            }
                        )
                        await send({"type": "http.response.body", "body": payload})
                        status = 200
                        return
            assert response is not None
            response.raw_headers.append(request_id_header)
            await response(scope, receive, send)
            status = response.status_code
        finally:
            counter, histogram = request_metrics("POST", scope["path"], status)
            counter.inc()
            histogram.observe(time.perf_counter() - started)
            request_id_var.reset(context)

    async def _handled(self, exc: Exception, scope: Scope, receive: Receive) -> Response:
        """The app's answer to `exc`, by the handler the stack would pick (the status code's,
        then the nearest class's); an exception no handler takes is raised again."""
        handler = None
        if isinstance(exc, StarletteHTTPException):
            handler = self.exception_handlers.get(exc.status_code)
        for kind in type(exc).__mro__:
            if handler is not None:
                break
            handler = self.exception_handlers.get(kind)
        if handler is None:
            raise exc
        response = handler(StarletteRequest(scope, receive), exc)
        if inspect.isawaitable(response):
            response = await response
        return response


def header_text(value: bytes | None) -> str | None:
    """A raw header value as text (HTTP headers are Latin-1), or None when absent."""
    return None if value is None else value.decode("latin-1")


class _ClientGone(Exception):
    """The client went away before its body was whole."""


async def _whole_body(receive: Receive, first: bytes, limit: int) -> bytes | None:
    """A body sent in parts, `first` the first; None once it passes `limit` bytes."""
    chunks, size = [first], len(first)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_service_app(
    *,
    title: str,
    description: str,
    lifespan: Any,
    routers: Iterable[APIRouter],
    body_limits: dict[str, int] | None = None,
    version: str = "1.0.0",
    cors_origins: Sequence[str] | None = None,
    direct_routes: Mapping[str, DirectEndpoint] | None = None,
) -> ServiceApp:
    """`cors_origins`: the browser origins allowed to call the service (the services pass
    their settings' `CORS_ORIGINS`); without it, read from the environment; none when
    empty. `direct_routes`: `POST` paths answered ahead of the stack (`ServiceApp`); each
    must also be a route of `routers` (its documentation, and its answer to browsers)."""
    app = ServiceApp(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        docs_url=None,
        redoc_url=None,
    )
    _problems_as_problem_json(app)
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware, default_limit=DEFAULT_BODY_LIMIT, limits=body_limits
    )
    app.add_middleware(RequestContextMiddleware)
    origins = ServiceSettings().cors_origins if cors_origins is None else list(cors_origins)
    if origins:
        # Outermost: a preflight is answered before the other middleware, and the error
        # answers of the handlers inside carry the allow headers too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            max_age=600,
        )
    _offline_docs(app)
    app.include_router(health_router)
    for router in routers:
        app.include_router(router)
    for path, endpoint in (direct_routes or {}).items():
        app.add_direct_route(path, endpoint, (body_limits or {}).get(path, DEFAULT_BODY_LIMIT))
    return app


def _offline_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` as FastAPI serves them, but with their scripts,
    styles and icon served by the service itself: the pages work with no internet access."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_DOCS_FILES), name="docs-assets")
    redirect_url = "/docs/oauth2-redirect"

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{DOCS_ASSETS}/{name}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            # No badge that asks swagger.io's online validator about the document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )


def _problems_as_problem_json(app: FastAPI) -> None:
    """FastAPI writes a response `model` under `application/json`; errors are sent as
    `application/problem+json`, so the document says that instead (a client generator or a
    fuzzer reads the schema of the content type it gets)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for path in document.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[:1] in "45" and "application/problem+json" in content:
                        schema = content.pop("application/json", {}).get("schema")
                        if schema is not None:
                            content["application/problem+json"] = {"schema": schema}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
