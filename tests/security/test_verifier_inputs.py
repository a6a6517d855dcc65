"""Hostile and concurrent requests at the verifier, against the real processes (issue 10):
a `venue_id` that is not an id never reaches venue-admin's internal URLs, the gate endpoint
refuses user tokens, concurrent scans each leave one access record, and the OpenAPI
document declares the scan's credentials and error answers."""

import asyncio
from datetime import date
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hc_common.devstack import Stack
from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api
from tests.journeys import apply_for, open_venue, sign_in
from tests.security.support import refs, resolve

pytestmark = pytest.mark.e2e

# Each of these made the verifier build a venue-admin URL from it; the tab and DEL gave 500
# (httpx.InvalidURL), the first read the internal scan snapshot with the service key.
HOSTILE_VENUE_IDS = [
    "../scan-snapshot?limit=5000&x=",
    "../../scan-snapshot",
    "%2e%2e%2fscan-snapshot",
    "a\tb",
    "\x7f",
    "venue\x00",
    "01ARZ3NDEKTSV4RRFFQ69G5FAV",  # a ULID, but not as this system writes them (upper case)
    "0" * 25,
    "0" * 27,
    " " + "0" * 25,
    "https://example.invalid/",
    "x" * 64,
]


def requests_seen(client: httpx.Client, route: str) -> float:
    """How many requests the service has answered on `route` (its /metrics)."""
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("route") == route:
                total += sample.value
    return total


INTERNAL_ROUTES = ("/internal/v1/scan-snapshot", "/internal/v1/venues/{venue_id}/scan-context")


def internal_reads(api: Api) -> dict[str, float]:
    return {route: requests_seen(api.venue_admin, route) for route in INTERNAL_ROUTES}


def new_venue(api: Api) -> tuple[str, dict[str, str]]:
    admin = sign_in(api.issuer, make_phone())
    return open_venue(api.venue_admin, admin), admin


def device_token(api: Api, venue_id: str, admin: dict[str, str]) -> dict[str, str]:
    made = api.venue_admin.post(
        f"/v1/venues/{venue_id}/devices", headers=admin, json={"name": "北门1号闸机"}
    )
    assert made.status_code == 201, made.text
    token = api.venue_admin.post("/v1/devices/token", json=made.json())
    assert token.status_code == 200, token.text
    return {"Authorization": "Bearer " + token.json()["access_token"]}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


@pytest.fixture(scope="module")
def stranger(api: Api) -> dict[str, str]:
    return sign_in(api.issuer, make_phone())


@pytest.fixture(scope="module")
def card(api: Api) -> dict[str, Any]:
    family = sign_in(api.issuer, make_phone())
    applied = apply_for(api.issuer, family, make_id_number(date(1950, 3, 8)))
    assert applied.status_code == 201, applied.text
    return dict(applied.json())


@pytest.mark.parametrize("venue_id", HOSTILE_VENUE_IDS)
def test_a_venue_id_not_of_our_format_is_an_unknown_venue_that_never_reaches_venue_admin(
    api: Api, stranger: dict[str, str], card: dict[str, Any], venue_id: str
) -> None:
    before = internal_reads(api)
    answer = api.verifier.post(
        "/v1/verify", headers=stranger, json={"qr": card["qr"], "venue_id": venue_id}
    )
    assert_problem(answer, 404, "not_found")
    assert internal_reads(api) == before, "the verifier called venue-admin with it"


def test_a_venue_id_not_of_our_format_is_404_for_a_gate_too(api: Api, card: dict[str, Any]) -> None:
    venue_id, admin = new_venue(api)
    gate = device_token(api, venue_id, admin)
    before = internal_reads(api)
    for hostile in HOSTILE_VENUE_IDS[:5]:
        answer = api.verifier.post(
            "/v1/verify", headers=gate, json={"qr": card["qr"], "venue_id": hostile}
        )
        assert_problem(answer, 404, "not_found")
    assert internal_reads(api) == before
    # Its own venue, given or not, still scans.
    for body in ({"qr": card["qr"], "venue_id": venue_id}, {"qr": card["qr"]}):
        scanned = poll(
            lambda body=body: (
                (r := api.verifier.post("/v1/verify", headers=gate, json=body)).status_code == 200
                and r
            ),
            5.0,
        )
        assert scanned, "the gate could not scan at its own venue"


def test_a_user_token_at_the_gate_endpoint_is_forbidden(
    api: Api, stranger: dict[str, str], card: dict[str, Any]
) -> None:
    assert_problem(
        api.verifier.post("/v1/gate/verify", headers=stranger, json={"qr": card["qr"]}),
        403,
        "forbidden",
    )
    # Who may call it is settled before what the body says (401 and 403 before 422).
    assert_problem(
        api.verifier.post("/v1/gate/verify", headers=stranger, content=b"not json"),
        403,
        "forbidden",
    )
    assert_problem(
        api.verifier.post("/v1/gate/verify", json={"qr": card["qr"]}), 401, "unauthorized"
    )


def test_malformed_scan_bodies_are_422_never_5xx(
    api: Api, stranger: dict[str, str], card: dict[str, Any]
) -> None:
    venue_id, admin = new_venue(api)
    for body in (
        b"",
        b"[]",
        b'{"qr": 1, "venue_id": "' + venue_id.encode() + b'"}',
        b'{"qr": null}',
        b'{"qr": "' + b"G" * 3000 + b'"}',
        b'{"qr": "\xff\xfe"}',
    ):
        answer = api.verifier.post(
            "/v1/verify",
            headers={**admin, "Content-Type": "application/json"},
            content=body,
        )
        assert_problem(answer, 422, "validation_error")
    # A QR that is no credential of ours, however odd, is a decision, not an error.
    for qr in ("GXHC1:../../internal", "GXHC1:a.b.c", "GXHC1:\x00", "x"):
        answer = api.verifier.post(
            "/v1/verify", headers=admin, json={"qr": qr, "venue_id": venue_id}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["reasons"] == ["credential_invalid"]


def test_concurrent_scans_each_leave_exactly_one_access_record(
    api: Api, stack: Stack, card: dict[str, Any]
) -> None:
    venue_id, admin = new_venue(api)
    gate = device_token(api, venue_id, admin)
    n = 24

    async def scan_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.url("verifier"), timeout=20) as client:
            # Half by the main admin (venue_id given), half by the gate (its own venue).
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/verify",
                        headers=admin if i % 2 else gate,
                        json={"qr": card["qr"], "venue_id": venue_id},
                    )
                    for i in range(n)
                )
            )

    answers = asyncio.run(scan_all())
    assert [a.status_code for a in answers] == [200] * n, [a.text for a in answers]
    ids = {a.json()["record_id"] for a in answers}
    assert len(ids) == n

    def stored() -> set[str]:
        listed = api.venue_admin.get(
            f"/v1/venues/{venue_id}/access-records", headers=admin, params={"limit": "500"}
        )
        return {item["record_id"] for item in listed.json()["items"]}

    assert poll(lambda: stored() == ids, 10.0), "access records lost or not stored once"


def test_the_openapi_document_declares_the_scans_credentials(api: Api) -> None:
    document = api.verifier.get("/openapi.json").json()
    for ref in refs(document):
        resolve(document, ref)
    schemes = document["components"]["securitySchemes"]
    for name in ("UserToken", "DeviceToken"):
        assert (schemes[name]["type"], schemes[name]["scheme"]) == ("http", "bearer")
    verify_op = document["paths"]["/v1/verify"]["post"]
    gate_op = document["paths"]["/v1/gate/verify"]["post"]
    assert verify_op["security"] == [{"UserToken": []}, {"DeviceToken": []}]
    assert gate_op["security"] == [{"DeviceToken": []}]
    venue_id = verify_op["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "venue_id"
    ]
    assert "pattern" in str(venue_id) and "404" in verify_op["description"]


def test_the_scans_error_answers_are_documented_as_problem_json(api: Api) -> None:
    document = api.verifier.get("/openapi.json").json()
    expected = {
        "/v1/verify": ("401", "403", "404", "422"),
        "/v1/gate/verify": ("401", "403", "422"),
    }
    for path, statuses in expected.items():
        responses = document["paths"][path]["post"]["responses"]
        for status in statuses:
            content = responses[status]["content"]
            assert "schema" in content.get("application/problem+json", {}), (path, status, content)
            schema = resolve(document, content["application/problem+json"]["schema"]["$ref"])
            assert {"type", "title", "status", "code"} <= set(schema["properties"])
