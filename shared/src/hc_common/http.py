"""Outbound HTTP: one client per upstream, explicit time-outs, the request id passed on."""

import httpx

from hc_common.logging import request_id_var


async def _add_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id:
        request.headers["X-Request-ID"] = request_id


def make_client(
    base_url: str,
    *,
    service_key: str | None = None,
    timeout: float = 2.0,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {service_key}"} if service_key else {}
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        event_hooks={"request": [_add_request_id]},
    )
