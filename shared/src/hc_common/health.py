"""`/healthz`, `/readyz` and `/metrics`, the same on every service."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from hc_common.errors import problem_response

ReadinessCheck = Callable[[], Awaitable[bool]]

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="The process is alive, with the state of what it depends on",
    description="Always 200 while the process runs (a liveness probe must not restart a "
    "service because the message bus is away). `message_bus` says whether it is connected "
    "and to which server; the same is in `/metrics` as `message_bus_connected`.",
)
async def healthz(request: Request) -> dict[str, Any]:
    detail: dict[str, Callable[[], Any]] = getattr(request.app.state, "health_detail", {})
    return {"status": "ok", **{name: describe() for name, describe in detail.items()}}


@router.get(
    "/readyz",
    summary="Ready to serve: what the service needs is reachable or loaded (503 otherwise)",
    description="The checks are the service's own: its database and the message bus for a "
    "service that writes, the loaded view for the verifier (which answers scans from memory "
    "while the bus is away).",
    responses={503: {"description": "Not ready"}},
)
async def readyz(request: Request) -> Response:
    checks: dict[str, ReadinessCheck] = getattr(request.app.state, "readiness", {})
    names = list(checks)
    results = await asyncio.gather(*(checks[n]() for n in names), return_exceptions=True)
    status = {n: (r is True) for n, r in zip(names, results, strict=True)}
    if all(status.values()):
        return JSONResponse({"status": "ready", "checks": status})
    failing = ", ".join(n for n, ok in status.items() if not ok)
    return problem_response(
        request, 503, "service_unavailable", f"not ready: {failing}", extra={"checks": status}
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
