"""The first real path through all four services, over HTTP, as the contract words it."""

import time
from datetime import date

import pytest

from hc_common.testing import make_id_number, make_phone
from tests.conftest import Api
from tests.journeys import AUTHORITY, apply_for, open_venue, sign_in

pytestmark = pytest.mark.e2e


def test_slice_green_passes_and_red_is_denied(api: Api) -> None:
    family = sign_in(api.issuer, make_phone())
    grandma_id = make_id_number(date(1950, 3, 8))
    applied = apply_for(api.issuer, family, grandma_id)
    assert applied.status_code == 201, applied.text
    credential = applied.json()
    assert credential["holder"]["masked_name"] == "李*华"
    assert credential["holder"]["masked_id_number"] == grandma_id[:6] + "********" + grandma_id[-4:]
    assert credential["qr"].startswith("GXHC1:") and len(credential["qr"]) <= 300
    assert grandma_id not in credential["qr"]

    admin = sign_in(api.issuer, make_phone())
    venue_id = open_venue(api.venue_admin, admin)

    staff_phone = make_phone()
    sent = api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins/code", headers=admin, json={"phone": staff_phone}
    )
    assert sent.status_code == 202
    code = api.venue_admin.get("/dev/sms-outbox", params={"phone": staff_phone}).json()["messages"][
        0
    ]["code"]
    member = api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins",
        headers=admin,
        json={"phone": staff_phone, "code": code},
    )
    assert member.status_code == 201, member.text
    assert member.json()["role"] == "sub_admin"
    assert member.json()["permissions"] == ["reverse_scan"]
    staff = sign_in(api.issuer, staff_phone)
    scan = {"qr": credential["qr"], "venue_id": venue_id}

    green = api.verifier.post("/v1/verify", headers=staff, json=scan)
    assert green.status_code == 200, green.text
    body = green.json()
    assert body["decision"] == "pass" and body["reasons"] == []
    assert body["holder"]["masked_name"] == "李*华" and body["health"]["color"] == "green"
    assert body["health"]["nat"] is None and body["health"]["vaccination"] is None
    assert body["stale"] is False

    set_red = api.health_records.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": grandma_id, "color": "red", "reason": "close contact"},
    )
    assert set_red.status_code == 200, set_red.text
    assert set_red.json()["color"] == "red"

    # The change reaches the verifier by event; the contract gives it 2 seconds.
    deadline = time.monotonic() + 2
    while True:
        red = api.verifier.post("/v1/verify", headers=staff, json=scan)
        assert red.status_code == 200
        if red.json()["decision"] != "pass" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert red.json()["decision"] == "deny"
    assert red.json()["reasons"] == ["color_red"]


def test_slice_errors_are_problems(api: Api) -> None:
    missing = api.issuer.get("/no/such/path")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"

    bad_phone = api.issuer.post("/v1/auth/otp", json={"phone": "12345"})
    assert bad_phone.status_code == 422 and bad_phone.json()["code"] == "invalid_phone"
    assert bad_phone.json()["errors"][0]["field"] == "phone"

    wrong = api.issuer.post("/v1/auth/token", json={"phone": make_phone(), "code": "000000"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_code"

    unauthenticated = api.verifier.post("/v1/verify", json={"qr": "GXHC1:x", "venue_id": "v"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == "unauthorized"

    english = api.issuer.get("/nowhere", headers={"Accept-Language": "en"})
    assert english.json()["title"] == "Not found"

    bad_id = api.health_records.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": "450103195003081234", "color": "red", "reason": "x"},
    )
    assert bad_id.status_code == 422 and bad_id.json()["code"] == "invalid_id_number"
