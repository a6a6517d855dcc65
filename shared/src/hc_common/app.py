"""The application factory every service uses: errors, middleware, operations routes, the
API's documentation pages (served offline) and CORS for the staff page's origins."""

from collections.abc import Iterable, Sequence
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
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse

from hc_common.errors import Problem, install_error_handlers
from hc_common.health import router as health_router
from hc_common.middleware import MIB, BodySizeLimitMiddleware, RequestContextMiddleware
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


def create_service_app(
    *,
    title: str,
    description: str,
    lifespan: Any,
    routers: Iterable[APIRouter],
    body_limits: dict[str, int] | None = None,
    version: str = "1.0.0",
    cors_origins: Sequence[str] | None = None,
) -> FastAPI:
    """`cors_origins`: the browser origins allowed to call the service (the services pass
    their settings' `CORS_ORIGINS`); without it, read from the environment; none when
    empty."""
    app = FastAPI(
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
    app.add_middleware(BodySizeLimitMiddleware, default_limit=4 * MIB, limits=body_limits)
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
