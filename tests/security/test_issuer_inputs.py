"""Hostile inputs at the issuer, over HTTP to the real process (issue 10, findings 6, 7, 8, 10
and 11): image bombs, other scripts' digits, control characters, ids that are not ids,
loose types, the reissue of a revoked card, and what the OpenAPI document promises."""

import asyncio
import struct
import zlib
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from hc_common.devstack import Stack
from hc_common.testing import make_id_number, make_phone
from tests.conftest import Api
from tests.journeys import PHOTO_PNG, apply_for, sign_in
from tests.security.support import refs

pytestmark = pytest.mark.e2e

NAME = "覃秀兰"


def png(width: int, height: int, truncated: bool = False) -> str:
    """A black-and-white PNG of `width` x `height` pixels, all zero: a few KB that unpack to
    `width * height` bytes in Pillow (169 MB for 13,000 x 13,000). `truncated` cuts its
    pixel data short, so that it cannot be decoded at all."""
    import base64

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then 1 bit a pixel
    pixels = zlib.compress(row * height, 9)
    if truncated:
        pixels = pixels[: len(pixels) // 4]
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def bomb() -> str:
    return png(13_000, 13_000)


@pytest.fixture(scope="module")
def family(api: Api) -> dict[str, str]:
    return sign_in(api.issuer, make_phone())


def face_token(api: Api, name: str, id_number: str) -> str:
    response = api.issuer.post("/dev/face-checks", json={"name": name, "id_number": id_number})
    assert response.status_code == 200, response.text
    return str(response.json()["face_check_token"])


def application(api: Api, photo: str, token: str | None = None) -> dict[str, Any]:
    id_number = make_id_number(date(1951, 2, 3))
    return {
        "name": NAME,
        "id_number": id_number,
        "relationship": "grandparent",
        "photo": photo,
        "face_check_token": token if token is not None else face_token(api, NAME, id_number),
    }


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code, response.text[:300]


# --- Finding 6: image bombs ----------------------------------------------------------------


def test_a_bomb_with_a_forged_token_is_refused_before_the_photo_is_looked_at(
    api: Api, family: dict[str, str], bomb: str
) -> None:
    forged = application(api, bomb, token="eyJhbGciOiJIUzI1NiJ9.e30.forged")
    problem(
        api.issuer.post("/v1/family/credentials", headers=family, json=forged),
        403,
        "face_check_failed",
    )
    # A photo that cannot even be decoded still gets the token's answer: it is checked first.
    broken = application(api, png(13_000, 13_000, truncated=True), token="forged")
    problem(
        api.issuer.post("/v1/family/credentials", headers=family, json=broken),
        403,
        "face_check_failed",
    )


def test_a_bomb_with_a_valid_token_is_invalid_photo(
    api: Api, family: dict[str, str], bomb: str
) -> None:
    response = api.issuer.post(
        "/v1/family/credentials", headers=family, json=application(api, bomb)
    )
    problem(response, 422, "invalid_photo")


def test_more_than_4096_pixels_a_side_is_invalid_photo_and_4096_is_not(
    api: Api, family: dict[str, str]
) -> None:
    for width, height in ((4097, 1), (1, 4097)):
        response = api.issuer.post(
            "/v1/family/credentials", headers=family, json=application(api, png(width, height))
        )
        problem(response, 422, "invalid_photo")
    edge = api.issuer.post(
        "/v1/family/credentials", headers=family, json=application(api, png(4096, 8))
    )
    assert edge.status_code == 201, edge.text


async def test_the_service_keeps_answering_during_six_bombs_at_once(
    api: Api, family: dict[str, str], bomb: str
) -> None:
    bodies = [application(api, bomb) for _ in range(6)]
    async with httpx.AsyncClient(base_url=str(api.issuer.base_url), timeout=120) as client:

        async def health() -> list[int]:
            statuses = []
            for _ in range(5):
                statuses.append((await client.get("/healthz")).status_code)
                await asyncio.sleep(0.01)
            return statuses

        *uploads, healthz = await asyncio.gather(
            *(client.post("/v1/family/credentials", headers=family, json=b) for b in bodies),
            health(),
        )
    for upload in uploads:
        problem(upload, 422, "invalid_photo")
    assert healthz == [200] * 5


# --- Finding 7: digits of other scripts -----------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "１３８００１３８０００",  # full-width
        "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic
        "13８00138000",  # one full-width digit among ASCII ones
    ],
)
def test_a_phone_of_other_scripts_digits_is_invalid_phone(api: Api, phone: str) -> None:
    problem(api.issuer.post("/v1/auth/otp", json={"phone": phone}), 422, "invalid_phone")
    problem(
        api.issuer.post("/v1/auth/token", json={"phone": phone, "code": "123456"}),
        422,
        "invalid_phone",
    )


# --- Finding 8: NUL and other control characters -------------------------------------------


@pytest.mark.parametrize("name", ["覃秀\x00兰", "覃秀兰\x7f", "覃\t秀兰", "覃秀兰\u0085"])
def test_a_control_character_in_a_name_is_422(api: Api, family: dict[str, str], name: str) -> None:
    body = application(api, PHOTO_PNG)
    body["name"] = name
    problem(
        api.issuer.post("/v1/family/credentials", headers=family, json=body), 422, "invalid_text"
    )
    problem(
        api.issuer.post("/dev/face-checks", json={"name": name, "id_number": body["id_number"]}),
        422,
        "invalid_text",
    )


def test_appeal_texts_refuse_control_characters_but_keep_tabs_and_line_breaks(
    api: Api, family: dict[str, str]
) -> None:
    for text in ("卡丢了\x00", "卡丢了\x1b[31m", "\x7f"):
        response = api.issuer.post(
            "/v1/appeals", headers=family, json={"category": "lost_card", "description": text}
        )
        problem(response, 422, "invalid_text")
    kept = api.issuer.post(
        "/v1/appeals",
        headers=family,
        json={"category": "other", "description": "第一行\n第二行\r\n\t缩进"},
    )
    assert kept.status_code == 201, kept.text
    assert kept.json()["description"] == "第一行\n第二行\r\n\t缩进"


# --- Ids that are not ids, loose types ------------------------------------------------------


@pytest.mark.parametrize("bad", ["%00", "..%2Fx", "x" * 26, "%7F" + "0" * 25, "0" * 300])
def test_a_credential_id_that_is_not_an_id_is_404(
    api: Api, family: dict[str, str], bad: str
) -> None:
    base = f"/v1/family/credentials/{bad}"
    for method, path in [
        ("GET", base),
        ("GET", base + "/qr.png"),
        ("GET", base + "/card.pdf"),
        ("POST", base + "/reissue"),
        ("DELETE", base),
    ]:
        response = api.issuer.request(method, path, headers=family)
        assert response.status_code == 404, (method, path, response.text[:200])
        assert response.json()["code"] == "not_found"


def test_ids_in_bodies_and_cursors_that_are_not_ids_are_422(
    api: Api, family: dict[str, str]
) -> None:
    problem(
        api.issuer.post(
            "/v1/appeals",
            headers=family,
            json={"category": "other", "description": "x", "credential_id": "../x\x00"},
        ),
        422,
        "invalid_id",
    )
    for path in ("/v1/family/credentials", "/v1/appeals"):
        response = api.issuer.get(path, headers=family, params={"cursor": "\x00"})
        problem(response, 422, "invalid_id")
    problem(api.issuer.get("/dev/sms-outbox", params={"phone": "1\x00"}), 422, "invalid_phone")


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/auth/otp", {"phone": 13800138000}),
        ("/v1/auth/token", {"phone": "13800138000", "code": 123456}),
        ("/v1/auth/token", {"phone": "13800138000", "code": True}),
        ("/v1/appeals", {"category": "other", "description": 1}),
    ],
)
def test_numbers_and_booleans_are_not_strings(
    api: Api, family: dict[str, str], path: str, body: dict[str, object]
) -> None:
    response = api.issuer.post(path, headers=family, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


# --- Finding 10: a revoked credential is not reissued ---------------------------------------


def test_a_revoked_credential_cannot_be_reissued(api: Api, family: dict[str, str]) -> None:
    applied = apply_for(api.issuer, family, make_id_number(date(1944, 4, 4)), NAME)
    assert applied.status_code == 201, applied.text
    cid = applied.json()["credential_id"]
    assert api.issuer.delete(f"/v1/family/credentials/{cid}", headers=family).status_code == 204
    reissued = api.issuer.post(f"/v1/family/credentials/{cid}/reissue", headers=family)
    problem(reissued, 409, "credential_not_active")
    listed = api.issuer.get("/v1/family/credentials", headers=family).json()["items"]
    assert [c["status"] for c in listed if c["credential_id"] == cid] == ["revoked"]


# --- Finding 11: the OpenAPI document -------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(stack: Stack) -> Iterator[dict[str, Any]]:
    document = httpx.get(stack.url("issuer") + "/openapi.json", timeout=10).json()
    yield document


def test_every_ref_of_the_openapi_document_resolves(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    dangling = {r for r in refs(openapi) if r.removeprefix("#/components/schemas/") not in schemas}
    assert not dangling


def test_every_operation_declares_the_credential_it_takes(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["UserToken"] == {**schemes["UserToken"], "type": "http", "scheme": "bearer"}
    assert schemes["ServiceKey"]["scheme"] == "bearer"
    public = {
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/v1/auth/otp",
        "/v1/auth/token",
    }
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            declared = operation.get("security")
            if path.startswith(("/v1/family/", "/v1/appeals")) or path == "/v1/family/credentials":
                assert declared == [{"UserToken": []}], (method, path)
            elif path.startswith("/internal/"):
                assert declared == [{"ServiceKey": []}], (method, path)
            elif path.startswith("/v1/review/"):
                assert declared == [{"AuthorityKey": []}], (method, path)
            else:
                assert path in public or path.startswith("/dev/"), (method, path)
                assert not declared, (method, path)


def test_every_error_answer_is_documented_as_problem_json(openapi: dict[str, Any]) -> None:
    def answers(method: str, path: str) -> dict[str, Any]:
        responses: dict[str, Any] = openapi["paths"][path][method]["responses"]
        return responses

    expected = {
        ("post", "/v1/auth/otp"): {"422", "429", "503"},
        ("post", "/v1/auth/token"): {"401", "422"},
        ("post", "/v1/family/credentials"): {"401", "403", "409", "422", "503"},
        ("post", "/v1/family/credentials/{credential_id}/reissue"): {"401", "404", "409", "422"},
        ("delete", "/v1/family/credentials/{credential_id}"): {"401", "404"},
        ("post", "/v1/appeals"): {"401", "404", "422"},
    }
    for (method, path), statuses in expected.items():
        documented = answers(method, path)
        assert statuses <= set(documented), (method, path, sorted(documented))
        for status in statuses:
            assert "application/problem+json" in documented[status]["content"], (path, status)
