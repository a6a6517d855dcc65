"""Gate devices: registration, a secret shown once, device tokens, deletion, events, and
what the verifier reads (scan context, cold-start snapshot)."""

import jwt
from sqlalchemy import select

from hc_common.auth.tokens import KeySet
from hc_common.events.envelope import DEVICE_CHANGED
from hc_common.ids import new_id
from venue_admin.device.models import Device
from venue_admin.venue.models import Venue

SERVICE = {"Authorization": "Bearer dev-service-key"}


async def _register(va, venue_id: str, admin) -> dict:
    response = await va.client.post(
        f"/v1/venues/{venue_id}/devices",
        headers=admin.headers,
        json={"name": "北门1号闸机", "manufacturer": "海康", "model": "DS-K3B"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def scan_context(va, venue_id: str, device_id: str) -> dict:
    """What the verifier reads of a device at a venue."""
    response = await va.client.get(
        f"/internal/v1/venues/{venue_id}/scan-context",
        headers=SERVICE,
        params={"device_id": device_id},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_device_gets_a_token_signed_by_the_published_key(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    device = await _register(va, venue_id, admin)
    assert set(device) == {"device_id", "device_secret"} and len(device["device_secret"]) >= 32
    async with va.app.state.db.sessionmaker() as session:
        row = await session.get(Device, device["device_id"])
        assert row is not None and device["device_secret"] not in row.secret_hash
    listed = await va.client.get(f"/v1/venues/{venue_id}/devices", headers=admin.headers)
    assert [d["device_id"] for d in listed.json()["items"]] == [device["device_id"]]
    assert device["device_secret"] not in listed.text  # shown that once only

    token = await va.client.post("/v1/devices/token", json=device)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    keys = KeySet()
    keys.load((await va.client.get("/.well-known/jwks.json")).json())
    claims = keys.decode(body["access_token"], "device")
    assert claims["iss"] == "hc-venue-admin" and claims["aud"] == "hc"
    assert claims["sub"] == device["device_id"] and claims["venue_id"] == venue_id
    assert claims["typ"] == "device" and claims["exp"] - claims["iat"] == 86400
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "EdDSA"


async def test_wrong_id_or_secret_is_401_invalid_credentials(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    device = await _register(va, venue_id, admin)
    for body in [
        {**device, "device_secret": device["device_secret"] + "x"},
        {**device, "device_id": new_id()},
    ]:
        response = await va.client.post("/v1/devices/token", json=body)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
    assert (await va.client.post("/v1/devices/token", json={"device_id": "x"})).status_code == 422
    # Not an id of ours at all: a malformed body, 422 `invalid_id`.
    malformed = await va.client.post(
        "/v1/devices/token", json={**device, "device_id": "nosuchdevice"}
    )
    assert malformed.status_code == 422 and malformed.json()["code"] == "invalid_id"


async def test_deleted_device_gets_no_token_and_the_verifier_sees_it_inactive(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    device = await _register(va, venue_id, admin)
    device_id = device["device_id"]
    context = await scan_context(va, venue_id, device_id)
    assert context["device"] == {
        "device_id": device_id,
        "venue_id": venue_id,
        "active": True,
        "version": 1,
    }
    assert context["member"] is None and context["rule"]["allowed_colors"] == ["green"]
    staff = await va.add_sub_admin(venue_id, admin)
    forbidden = await va.client.delete(
        f"/v1/venues/{venue_id}/devices/{device_id}", headers=staff.headers
    )
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
    other_venue = await va.venue(admin)
    wrong_venue = await va.client.delete(
        f"/v1/venues/{other_venue}/devices/{device_id}", headers=admin.headers
    )
    assert wrong_venue.status_code == 404
    deleted = await va.client.delete(
        f"/v1/venues/{venue_id}/devices/{device_id}", headers=admin.headers
    )
    assert deleted.status_code == 204
    assert (await va.client.post("/v1/devices/token", json=device)).json()[
        "code"
    ] == "invalid_credentials"
    context = await scan_context(va, venue_id, device_id)
    assert context["device"] == {
        "device_id": device_id,
        "venue_id": venue_id,
        "active": False,
        "version": 2,
    }
    assert (await scan_context(va, other_venue, device_id))["device"] is None
    again = await va.client.delete(
        f"/v1/venues/{venue_id}/devices/{device_id}", headers=admin.headers
    )
    assert again.status_code == 404
    listed = await va.client.get(f"/v1/venues/{venue_id}/devices", headers=admin.headers)
    assert listed.json()["items"] == []
    # Both changes went to the bus for the verifier.
    events = await va.published(DEVICE_CHANGED, venue_id, count=2)
    seen = [e for e in events if e["device_id"] == device_id]
    assert [(e["active"], e["version"]) for e in seen] == [(True, 1), (False, 2)]


async def test_internal_endpoints_need_the_service_key(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    for path in [f"/internal/v1/venues/{venue_id}/scan-context", "/internal/v1/scan-snapshot"]:
        assert (await va.client.get(path)).status_code == 401
        assert (await va.client.get(path, headers=admin.headers)).status_code == 401
    assert (
        await va.client.get("/internal/v1/venues/nosuch/scan-context", headers=SERVICE)
    ).status_code == 404


async def test_snapshot_holds_every_member_device_and_rule_across_pages(va) -> None:
    admin = va.user()
    venues = [await va.venue(admin) for _ in range(3)]
    staff = await va.add_sub_admin(venues[0], admin)
    device = await _register(va, venues[1], admin)
    await va.client.put(
        f"/v1/venues/{venues[2]}/rule",
        headers=admin.headers,
        json={
            "allowed_colors": ["green", "yellow"],
            "max_nat_age_hours": 72,
            "min_vaccine_doses": 1,
        },
    )
    members, devices, rules = [], [], []
    cursor, pages = None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await va.client.get("/internal/v1/scan-snapshot", headers=SERVICE, params=params)
        ).json()
        members += page["members"]
        devices += page["devices"]
        rules += page["rules"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages >= 2
    async with va.app.state.db.sessionmaker() as session:
        all_venues = set((await session.scalars(select(Venue.id))).all())
    assert {r["venue_id"] for r in rules} == all_venues and len(rules) == len(all_venues)
    mine = {(m["venue_id"], m["user_id"]): m for m in members}
    assert mine[(venues[0], staff.user_id)]["permissions"] == ["reverse_scan"]
    assert mine[(venues[0], staff.user_id)]["role"] == "sub_admin"
    assert {"venue_id", "user_id", "role", "permissions", "removed", "version"} <= set(
        mine[(venues[0], admin.user_id)]
    )
    assert {
        "device_id": device["device_id"],
        "venue_id": venues[1],
        "active": True,
        "version": 1,
    } in devices
    rule = next(r for r in rules if r["venue_id"] == venues[2])
    assert rule["allowed_colors"] == ["green", "yellow"] and rule["max_nat_age_hours"] == 72
    default = next(r for r in rules if r["venue_id"] == venues[0])
    assert default["allowed_colors"] == ["green"] and default["version"] == 0
