"""The problem details every service answers with, on a small app built by the same factory."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from hc_common.app import create_service_app
from hc_common.errors import Conflict
from hc_common.idnumber import IdNumberField
from hc_common.logging import JsonFormatter
from hc_common.phone import Phone

router = APIRouter()


class Body(BaseModel):
    phone: Phone
    id_number: IdNumberField


@router.post("/things")
async def make_thing(body: Body) -> dict[str, str]:
    return {"id_number": body.id_number}


@router.post("/conflict")
async def conflict() -> None:
    raise Conflict("credential_exists", detail="已存在", detail_en="Exists")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async def ok() -> bool:
        return True

    async def down() -> bool:
        return False

    app.state.readiness = {"database": ok, "message_bus": down}
    yield


def _client() -> httpx.AsyncClient:
    app = create_service_app(title="t", description="t", lifespan=_lifespan, routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_an_unknown_path_is_a_404_problem() -> None:
    async with _client() as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found" and body["status"] == 404
    assert body["type"].endswith("/not_found") and body["title"] == "资源不存在"
    assert body["detail"]


async def test_a_wrong_method_is_a_405_problem() -> None:
    async with _client() as client:
        response = await client.get("/things")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


async def test_validation_names_the_field_and_the_domain_code() -> None:
    async with _client() as client:
        response = await client.post(
            "/things", json={"phone": "23800138000", "id_number": "11010519491231002x"}
        )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_phone"
    assert body["errors"] == [
        {
            "field": "phone",
            "code": "invalid_phone",
            "message": "不是中国大陆手机号码（以 1 开头的 11 位数字）",
        }
    ]
    assert body["detail"] == "手机号码：不是中国大陆手机号码（以 1 开头的 11 位数字）"


async def test_an_id_number_is_normalised_and_a_bad_one_is_invalid_id_number() -> None:
    async with _client() as client:
        ok = await client.post(
            "/things", json={"phone": "13800138000", "id_number": "11010519491231002x"}
        )
        bad = await client.post(
            "/things",
            json={"phone": "13800138000", "id_number": "110105194912310021"},
            headers={"Accept-Language": "en"},
        )
    assert ok.json() == {"id_number": "11010519491231002X"}
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_id_number"
    assert bad.json()["errors"][0]["message"] == (
        "Not a valid identity number: wrong check character"
    )
    assert bad.json()["detail"] == "ID number: Not a valid identity number: wrong check character"


async def test_a_body_that_is_not_json_is_a_422_problem() -> None:
    async with _client() as client:
        response = await client.post(
            "/things", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_a_body_that_cannot_be_read_is_a_422_like_bad_json() -> None:
    """Bytes that are not UTF-8, a number past Python's digit limit, nesting past the
    parser's depth: FastAPI's own 400 becomes the answer to malformed JSON."""
    async with _client() as client:
        for raw in (b'{"name": "o\xff"}', b'{"name": ' + b"9" * 5000 + b"}"):
            response = await client.post(
                "/things", content=raw, headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, (raw[:20], response.text)
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert body["code"] == "validation_error"
            assert body["errors"] == [
                {"field": "body", "code": "invalid_json", "message": "不是有效的 JSON"}
            ]


def test_errors_are_documented_as_problem_json() -> None:
    app = create_service_app(title="t", description="t", lifespan=_lifespan, routers=[router])
    responses = app.openapi()["paths"]["/things"]["post"]["responses"]
    assert responses["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


async def test_missing_fields_are_listed() -> None:
    async with _client() as client:
        response = await client.post("/things", json={})
    fields = {e["field"]: e["code"] for e in response.json()["errors"]}
    assert fields == {"phone": "missing", "id_number": "missing"}


async def test_domain_errors_carry_their_code_in_either_language() -> None:
    async with _client() as client:
        zh = await client.post("/conflict")
        en = await client.post("/conflict", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert zh.status_code == 409 and zh.json()["code"] == "credential_exists"
    assert zh.json()["detail"] == "已存在" and en.json()["detail"] == "Exists"


async def test_a_body_over_4_mib_is_a_413_problem() -> None:
    async with _client() as client:
        declared = await client.post(
            "/things",
            content=b"x" * (4 * 1024 * 1024 + 1),
            headers={"content-type": "application/json"},
        )

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b" " * (1024 * 1024)

        streamed = await client.post(
            "/things", content=chunks(), headers={"content-type": "application/json"}
        )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"


async def test_readyz_is_503_when_a_dependency_is_down() -> None:
    app = create_service_app(title="t", description="t", lifespan=_lifespan, routers=[router])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")
            metrics = await client.get("/metrics")
    assert alive.status_code == 200
    assert ready.status_code == 503 and ready.json()["checks"] == {
        "database": True,
        "message_bus": False,
    }
    assert "http_requests_total" in metrics.text


async def test_every_response_carries_a_request_id() -> None:
    async with _client() as client:
        given = await client.get("/healthz", headers={"X-Request-ID": "abc123"})
        made = await client.get("/healthz")
    assert given.headers["x-request-id"] == "abc123"
    assert len(made.headers["x-request-id"]) == 32


def test_log_lines_never_carry_id_numbers_or_phones() -> None:
    record = logging.LogRecord(
        "t",
        logging.INFO,
        __file__,
        1,
        "applied for 11010519491231002X from 13800138000",
        None,
        None,
    )
    record.id_number = "11010519491231002X"
    record.detail = {"phone": "13800138000", "note": "call 13912345678"}
    line = JsonFormatter("test").format(record)
    assert "11010519491231002X" not in line and "13800138000" not in line
    assert "13912345678" not in line
    assert "[id_number]" in line and "[phone]" in line
