"""The application factory every service uses: errors, middleware, operations routes."""

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI

from hc_common.errors import Problem, install_error_handlers
from hc_common.health import router as health_router
from hc_common.middleware import MIB, BodySizeLimitMiddleware, RequestContextMiddleware

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
) -> FastAPI:
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
    )
    _problems_as_problem_json(app)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, default_limit=4 * MIB, limits=body_limits)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    for router in routers:
        app.include_router(router)
    return app


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
