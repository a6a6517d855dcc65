"""A family member's journey through the issuer, end to end over HTTP: apply, print, report
the card lost, revoke, appeal; and what a verifier at a venue then makes of each QR code."""

import base64
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api
from tests.journeys import apply_for, sign_in

pytestmark = pytest.mark.e2e

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def jws_header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def apply(
    api: Api, family: dict[str, str], name: str, birth: date, relationship: str = "grandparent"
) -> tuple[httpx.Response, str]:
    id_number = make_id_number(birth)
    applied = apply_for(api.issuer, family, id_number, name, relationship)
    return applied, id_number


@pytest.fixture(scope="module")
def gate_keeper(api: Api) -> Callable[[str], dict[str, Any]]:
    """A venue's main admin scanning at their own venue: `scan(qr)` -> the verifier's answer."""
    admin = sign_in(api.issuer, make_phone())
    made = api.venue_admin.post(
        "/v1/venues",
        headers=admin,
        json={
            "name": "青秀万达广场",
            "category": "shopping_mall",
            "address": "东葛路",
            "region_code": "450103",
        },
    )
    assert made.status_code == 201, made.text
    venue_id = made.json()["venue_id"]

    def scan(qr: str) -> dict[str, Any]:
        answer = api.verifier.post(
            "/v1/verify", headers=admin, json={"qr": qr, "venue_id": venue_id}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    return scan


def scans_as_revoked(scan: Callable[[str], dict[str, Any]], qr: str) -> dict[str, Any]:
    """Polls the verifier for up to the contract's 2 s until the QR scans as revoked."""
    body = poll(lambda: (b := scan(qr))["reasons"] == ["credential_revoked"] and b, 2.0)
    assert body, f"still not revoked after 2 s: {scan(qr)}"
    assert body["decision"] == "deny"
    assert body["holder"] is None and body["health"] is None
    return body


def scans_as_pass(scan: Callable[[str], dict[str, Any]], qr: str) -> dict[str, Any]:
    body = poll(lambda: (b := scan(qr))["decision"] == "pass" and b, 2.0)
    assert body, f"did not pass within 2 s: {scan(qr)}"
    assert body["reasons"] == [] and body["holder"]["masked_name"]
    return body


def test_apply_list_print_reissue_revoke(api: Api, gate_keeper) -> None:
    scan = gate_keeper
    family = sign_in(api.issuer, make_phone())
    applied, id_number = apply(api, family, "李秀华", date(1950, 3, 8))
    assert applied.status_code == 201, applied.text
    credential = applied.json()
    cid = credential["credential_id"]
    assert credential["status"] == "active" and credential["version"] == 1
    assert credential["holder"]["masked_name"] == "李*华"
    assert credential["holder"]["masked_id_number"] == (id_number[:6] + "********" + id_number[-4:])
    assert credential["holder"]["relationship"] == "grandparent"
    assert credential["issued_at"].endswith("Z") and credential["expires_at"].endswith("Z")
    assert credential["qr"].startswith("GXHC1:") and len(credential["qr"]) <= 300
    assert id_number not in credential["qr"]

    # The family list and the one credential say the same.
    listed = api.issuer.get("/v1/family/credentials", headers=family)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == [credential] and listed.json()["next_cursor"] is None
    one = api.issuer.get(f"/v1/family/credentials/{cid}", headers=family)
    assert one.status_code == 200 and one.json() == credential

    # Someone else's family sees none of it.
    stranger = sign_in(api.issuer, make_phone())
    assert api.issuer.get(f"/v1/family/credentials/{cid}", headers=stranger).status_code == 404
    assert (
        api.issuer.get(f"/v1/family/credentials/{cid}/qr.png", headers=stranger).status_code == 404
    )
    assert (
        api.issuer.get(f"/v1/family/credentials/{cid}/card.pdf", headers=stranger).status_code
        == 404
    )
    assert api.issuer.get("/v1/family/credentials", headers=stranger).json()["items"] == []

    # What the family prints.
    png = api.issuer.get(f"/v1/family/credentials/{cid}/qr.png", headers=family)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png" and png.content.startswith(PNG_MAGIC)
    svg = api.issuer.get(f"/v1/family/credentials/{cid}/qr.svg", headers=family)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    for params in ({}, {"layout": "a4"}):
        pdf = api.issuer.get(
            f"/v1/family/credentials/{cid}/card.pdf", headers=family, params=params
        )
        assert pdf.status_code == 200, (params, pdf.text[:200])
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF-") and b"%%EOF" in pdf.content[-1024:]

    # The printed card passes at a venue.
    passed = scans_as_pass(scan, credential["qr"])
    assert passed["holder"]["masked_name"] == "李*华"
    assert passed["credential"]["credential_id"] == cid

    # The card is lost: reissue. The old card is revoked at once, the new one passes.
    reissued = api.issuer.post(f"/v1/family/credentials/{cid}/reissue", headers=family)
    assert reissued.status_code == 201, reissued.text
    new = reissued.json()
    assert new["credential_id"] != cid and new["version"] == 2 and new["status"] == "active"
    assert new["qr"] != credential["qr"] and new["holder"] == credential["holder"]
    old = api.issuer.get(f"/v1/family/credentials/{cid}", headers=family).json()
    assert old["status"] == "revoked"
    statuses = {
        c["credential_id"]: c["status"]
        for c in api.issuer.get("/v1/family/credentials", headers=family).json()["items"]
    }
    assert statuses == {cid: "revoked", new["credential_id"]: "active"}
    # The old card still prints (it would scan as revoked), as the service documents.
    assert api.issuer.get(f"/v1/family/credentials/{cid}/qr.png", headers=family).status_code == 200

    scans_as_revoked(scan, credential["qr"])
    renewed = scans_as_pass(scan, new["qr"])
    assert renewed["credential"]["version"] == 2
    assert renewed["credential"]["credential_id"] == new["credential_id"]

    # A second reissue of the old (revoked) card is refused: only the active one is reissued.
    again = api.issuer.post(f"/v1/family/credentials/{cid}/reissue", headers=family)
    assert again.status_code == 409 and again.json()["code"] == "credential_not_active"

    # Revoked by the family: the new card scans as revoked too.
    deleted = api.issuer.delete(f"/v1/family/credentials/{new['credential_id']}", headers=family)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (
        api.issuer.get(f"/v1/family/credentials/{new['credential_id']}", headers=family).json()[
            "status"
        ]
        == "revoked"
    )
    scans_as_revoked(scan, new["qr"])
    scans_as_revoked(scan, credential["qr"])
    # Another user cannot revoke or reissue it.
    assert api.issuer.delete(f"/v1/family/credentials/{cid}", headers=stranger).status_code == 404

    # With no active credential left, the person may apply again (the face check anew).
    third = apply_for(api.issuer, family, id_number)
    assert third.status_code == 201, third.text
    assert third.json()["version"] == 3
    scans_as_pass(scan, third.json()["qr"])


def test_an_active_credential_is_not_applied_for_twice(api: Api) -> None:
    family = sign_in(api.issuer, make_phone())
    first, id_number = apply(api, family, "王小明", date(2015, 6, 1), "grandchild")
    assert first.status_code == 201, first.text
    assert first.json()["holder"]["masked_name"] == "王*明"
    twice = apply_for(api.issuer, family, id_number, "王小明", "grandchild")
    assert twice.status_code == 409 and twice.json()["code"] == "credential_exists"
    assert twice.headers["content-type"] == "application/problem+json"


def test_appeals_filed_and_listed(api: Api) -> None:
    family = sign_in(api.issuer, make_phone())
    applied, _ = apply(api, family, "张建国", date(1948, 10, 1))
    assert applied.status_code == 201, applied.text
    cid = applied.json()["credential_id"]

    lost = api.issuer.post(
        "/v1/appeals",
        headers=family,
        json={
            "category": "lost_card",
            "description": "卡片丢失，补办后旧卡仍能通行吗？",
            "credential_id": cid,
        },
    )
    assert lost.status_code == 201, lost.text
    assert lost.json()["status"] == "open" and lost.json()["appeal_id"]
    assert lost.json()["created_at"].endswith("Z")
    wrong = api.issuer.post(
        "/v1/appeals",
        headers=family,
        json={"category": "wrong_status", "description": "扫码显示黄码，但我没有去过风险地区"},
    )
    assert wrong.status_code == 201, wrong.text

    listed = api.issuer.get("/v1/appeals", headers=family)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [a["appeal_id"] for a in items] == [wrong.json()["appeal_id"], lost.json()["appeal_id"]]
    assert all(a["status"] == "open" for a in items)
    assert items[1]["category"] == "lost_card" and items[1]["credential_id"] == cid
    assert listed.json()["next_cursor"] is None

    # Appeals are the user's own; a bad category is a 422; no token is a 401.
    stranger = sign_in(api.issuer, make_phone())
    assert api.issuer.get("/v1/appeals", headers=stranger).json()["items"] == []
    foreign = api.issuer.post(
        "/v1/appeals",
        headers=stranger,
        json={"category": "other", "description": "x", "credential_id": cid},
    )
    assert foreign.status_code == 404
    bad = api.issuer.post(
        "/v1/appeals", headers=family, json={"category": "complaint", "description": "x"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "category"
    assert api.issuer.get("/v1/appeals").status_code == 401


def test_jwks_has_credential_and_access_keys(api: Api) -> None:
    jwks = api.issuer.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    by_purpose: dict[str, set[str]] = {}
    for key in keys:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["x"] and key["kid"]
        assert "d" not in key  # public keys only
        by_purpose.setdefault(key["purpose"], set()).add(key["kid"])
    assert by_purpose.get("credential") and by_purpose.get("access")

    # The QR is signed with a credential key, the access token with an access key.
    family = sign_in(api.issuer, make_phone())
    applied, _ = apply(api, family, "陈桂英", date(1955, 1, 20))
    assert applied.status_code == 201, applied.text
    qr_header = jws_header(applied.json()["qr"].removeprefix("GXHC1:"))
    assert qr_header["alg"] == "EdDSA" and qr_header["kid"] in by_purpose["credential"]
    access_header = jws_header(family["Authorization"].removeprefix("Bearer "))
    assert access_header["alg"] == "EdDSA" and access_header["kid"] in by_purpose["access"]
