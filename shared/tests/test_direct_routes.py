"""Direct routes (hc_common.app `ServiceApp`): a hot path's POST answered ahead of the
middleware stack gives what the stack gives: the same answers and errors as the ordinary route
of the same path, the request id, metrics by route, the size limit; a browser's request (CORS)
takes the stack. And the hot path's counters and histograms read as prometheus_client's."""

import re
from collections.abc import AsyncIterator

import httpx
import orjson
import prometheus_client
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from hc_common import middleware
from hc_common.app import ServiceApp, create_service_app
from hc_common.errors import Conflict

PAGE = "https://scan.example:8443"


class Body(BaseModel):
    name: str


async def answer(raw: bytes) -> bytes:
    """What both routes answer: the name back, or an error of each kind."""
    try:
        name = Body.model_validate_json(raw).name
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None
    if name == "taken":
        raise Conflict("name_taken", detail="已占用", detail_en="Taken")
    if name == "bug":
        raise RuntimeError("a bug")
    return orjson.dumps({"name": name})


router = APIRouter()


@router.post("/v1/names")
async def routed(request: Request) -> Response:
    return Response(await answer(await request.body()), media_type="application/json")


async def direct(app: ServiceApp, headers: dict[bytes, bytes], body: bytes) -> bytes:
    return await answer(body)


def client(*, direct_routes: bool = True) -> httpx.AsyncClient:
    app = create_service_app(
        title="t",
        description="t",
        lifespan=None,
        routers=[router],
        cors_origins=[PAGE],
        body_limits={"/v1/names": 1024},
        direct_routes={"/v1/names": direct} if direct_routes else None,
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    )


BODIES = [
    {"name": "李华"},
    {"name": "taken"},
    {"name": "bug"},
    {"name": 5},
    {},
    b"{not json",
    b'{"name": "o\xff"}',
]


async def _send(http: httpx.AsyncClient, body: object, language: str) -> httpx.Response:
    headers = {"Accept-Language": language}
    if isinstance(body, bytes):
        return await http.post("/v1/names", content=body, headers=headers)
    return await http.post("/v1/names", json=body, headers=headers)


async def test_a_direct_route_answers_as_the_ordinary_route_would() -> None:
    async with client() as fast, client(direct_routes=False) as stack:
        for body in BODIES:
            for language in ("zh", "en"):
                one = await _send(fast, body, language)
                two = await _send(stack, body, language)
                assert (one.status_code, one.content) == (two.status_code, two.content), body
                assert one.headers["content-type"] == two.headers["content-type"]
    assert one.status_code == 422 and one.headers["content-type"] == "application/problem+json"


async def test_each_kind_of_answer_of_a_direct_route() -> None:
    async with client() as http:
        ok = await http.post("/v1/names", json={"name": "李华"})
        conflict = await http.post("/v1/names", json={"name": "taken"})
        invalid = await http.post("/v1/names", json={"name": 5})
        bug = await http.post("/v1/names", json={"name": "bug"})
    assert ok.status_code == 200 and ok.json() == {"name": "李华"}
    assert ok.headers["content-type"] == "application/json"
    assert conflict.status_code == 409 and conflict.json()["code"] == "name_taken"
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "name"
    assert bug.status_code == 500 and bug.json()["code"] == "internal_error"


async def test_a_direct_route_keeps_the_request_id() -> None:
    async with client() as http:
        given = await http.post("/v1/names", json={"name": "a"}, headers={"X-Request-ID": "r-1"})
        made = await http.post("/v1/names", json={"name": "a"})
        failed = await http.post(
            "/v1/names", json={"name": "taken"}, headers={"X-Request-ID": "r-2"}
        )
    assert given.headers["x-request-id"] == "r-1"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert failed.headers["x-request-id"] == "r-2"


async def test_a_direct_route_refuses_a_body_over_its_limit() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * 600

    async with client() as http:
        declared = await http.post("/v1/names", content=b" " * 1025)
        streamed = await http.post("/v1/names", content=parts())
        english = await http.post(
            "/v1/names", content=b" " * 1025, headers={"Accept-Language": "en"}
        )
        within = await http.post("/v1/names", content=b'{"name": "x"}' + b" " * 1000)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert response.headers["content-type"] == "application/problem+json"
        assert "x-request-id" in response.headers
    assert "at most" in english.json()["detail"]
    assert within.status_code == 200


async def test_a_browsers_request_and_other_methods_take_the_stack() -> None:
    async with client() as http:
        browser = await http.post("/v1/names", json={"name": "a"}, headers={"Origin": PAGE})
        preflight = await http.options(
            "/v1/names",
            headers={"Origin": PAGE, "Access-Control-Request-Method": "POST"},
        )
        other = await http.get("/v1/names")
    assert browser.status_code == 200 and browser.json() == {"name": "a"}
    assert browser.headers["access-control-allow-origin"] == PAGE
    assert preflight.status_code == 200
    assert other.status_code == 405 and other.json()["code"] == "method_not_allowed"


def requests_counted(status: str) -> float:
    labels = {"method": "POST", "route": "/v1/names", "status": status}
    return prometheus_client.REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_a_direct_route_is_counted_by_route_and_status() -> None:
    ok, conflicts = requests_counted("200"), requests_counted("409")
    async with client() as http:
        await http.post("/v1/names", json={"name": "a"})
        await http.post("/v1/names", json={"name": "a"})
        await http.post("/v1/names", json={"name": "taken"})
        metrics = (await http.get("/metrics")).text
    assert requests_counted("200") == ok + 2 and requests_counted("409") == conflicts + 1
    assert 'http_request_duration_seconds_count{method="POST",route="/v1/names"}' in metrics


def test_hot_path_metrics_read_as_prometheus_clients() -> None:
    theirs, ours = prometheus_client.CollectorRegistry(), prometheus_client.CollectorRegistry()
    for module, registry in ((prometheus_client, theirs), (middleware, ours)):
        counter = module.Counter("scans_total", "Scans", ["decision"], registry=registry)
        counter.labels("pass").inc()
        counter.labels("pass").inc(2)
        counter.labels("deny").inc()
        histogram = module.Histogram(
            "scan_seconds", "Scan time", buckets=(0.001, 0.01, 1), registry=registry
        )
        for value in (0.0005, 0.001, 0.002, 0.5, 3):
            histogram.observe(value)
        module.Counter("idle_total", "Never counted", registry=registry)

    def exposition(registry: prometheus_client.CollectorRegistry) -> str:
        text = prometheus_client.generate_latest(registry).decode()
        return re.sub(r"(_created.*) \S+", r"\1 T", text)  # creation times differ

    assert exposition(ours) == exposition(theirs)
