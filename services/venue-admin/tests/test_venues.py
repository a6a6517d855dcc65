"""The contract's Venues section: venues, members, sub-admins by SMS code, permissions, rules."""

import time

import pytest
from sqlalchemy import func, select

from hc_common.events.envelope import MEMBER_CHANGED, RULE_CHANGED
from hc_common.testing import eventually
from venue_admin.db import OutboxEvent
from venue_admin.venue.service import next_member_version

CATEGORIES = [
    "train_station",
    "bus_station",
    "metro",
    "airport",
    "passenger_terminal",
    "cinema",
    "theatre",
    "art_gallery",
    "entertainment",
    "internet_cafe",
    "guesthouse",
    "hotel",
    "supermarket",
    "market",
    "shopping_mall",
    "restaurant",
    "medical",
    "scenic_area",
    "highway_service_area",
    "traffic_checkpoint",
    "residential_community",
    "office_building",
    "other",
]


def problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["title"] and body["detail"] and body["type"]


async def test_creator_becomes_main_admin_with_every_permission(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin, name="万象城", category="shopping_mall", region_code="450103")
    got = await va.client.get(f"/v1/venues/{venue_id}", headers=admin.headers)
    assert got.status_code == 200
    assert got.json()["name"] == "万象城" and got.json()["category"] == "shopping_mall"
    assert got.json()["region_code"] == "450103"
    members = (await va.client.get(f"/v1/venues/{venue_id}/members", headers=admin.headers)).json()
    assert members["next_cursor"] is None
    [me] = members["items"]
    assert me["user_id"] == admin.user_id and me["role"] == "main_admin"
    assert me["permissions"] == ["reverse_scan"]
    assert me["masked_phone"] == admin.phone[:3] + "****" + admin.phone[-4:]
    assert me["added_at"].endswith("Z")


@pytest.mark.parametrize("category", CATEGORIES)
async def test_every_contract_category_is_accepted(va, category: str) -> None:
    venue_id = await va.venue(va.user(), category=category)
    assert venue_id


async def test_unknown_category_and_bad_region_codes_are_422(va) -> None:
    admin = va.user()
    base = {"name": "x", "category": "train_station", "address": "y", "region_code": "450103"}
    bad_category = await va.client.post(
        "/v1/venues", headers=admin.headers, json={**base, "category": "stadium"}
    )
    problem(bad_category, 422, "validation_error")
    assert bad_category.json()["errors"][0]["field"] == "category"
    for region in ["45010", "4501030", "99a103", "990103", "000000", "100103", "450 03"]:
        response = await va.client.post(
            "/v1/venues", headers=admin.headers, json={**base, "region_code": region}
        )
        problem(response, 422, "invalid_region_code")
        assert response.json()["errors"][0]["field"] == "region_code"
    for region in ["110101", "650102", "710000", "810000", "820000"]:
        ok = await va.client.post(
            "/v1/venues", headers=admin.headers, json={**base, "region_code": region}
        )
        assert ok.status_code == 201, (region, ok.text)


async def test_venue_list_holds_only_the_callers_venues(va) -> None:
    alice, bob = va.user(), va.user()
    mine = {await va.venue(alice), await va.venue(alice)}
    theirs = await va.venue(bob)
    staff = await va.add_sub_admin(theirs, bob)
    listed = (await va.client.get("/v1/venues", headers=alice.headers)).json()
    assert {v["venue_id"] for v in listed["items"]} == mine
    page = (await va.client.get("/v1/venues", headers=alice.headers, params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = (
        await va.client.get(
            "/v1/venues", headers=alice.headers, params={"limit": 1, "cursor": page["next_cursor"]}
        )
    ).json()
    assert {page["items"][0]["venue_id"], rest["items"][0]["venue_id"]} == mine
    staff_list = (await va.client.get("/v1/venues", headers=staff.headers)).json()["items"]
    assert [(v["venue_id"], v["role"]) for v in staff_list] == [(theirs, "sub_admin")]


async def test_outsiders_get_403_and_unknown_venues_404(va) -> None:
    admin, outsider = va.user(), va.user()
    venue_id = await va.venue(admin)
    for path in ["", "/members", "/rule", "/access-records", "/devices"]:
        problem(
            await va.client.get(f"/v1/venues/{venue_id}{path}", headers=outsider.headers),
            403,
            "forbidden",
        )
    problem(await va.client.get("/v1/venues/nosuchvenue", headers=admin.headers), 404, "not_found")
    problem(await va.client.get(f"/v1/venues/{venue_id}"), 401, "unauthorized")
    problem(
        await va.client.get(
            f"/v1/venues/{venue_id}", headers={"Authorization": "Bearer not.a.token"}
        ),
        401,
        "unauthorized",
    )


async def test_sub_admin_added_by_code_holds_reverse_scan(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    staff = va.user()
    sent = await va.client.post(
        f"/v1/venues/{venue_id}/sub-admins/code", headers=admin.headers, json={"phone": staff.phone}
    )
    assert sent.status_code == 202
    code = await va.sms_code(staff.phone)
    added = await va.client.post(
        f"/v1/venues/{venue_id}/sub-admins",
        headers=admin.headers,
        json={"phone": staff.phone, "code": code},
    )
    assert added.status_code == 201, added.text
    member = added.json()
    assert member["user_id"] == staff.user_id  # the number's user (created if it had none)
    assert member["role"] == "sub_admin" and member["permissions"] == ["reverse_scan"]
    assert member["masked_phone"] == staff.phone[:3] + "****" + staff.phone[-4:]
    assert staff.phone not in added.text
    listed = await va.client.get(f"/v1/venues/{venue_id}/members", headers=staff.headers)
    assert listed.status_code == 200  # members read
    assert {m["user_id"] for m in listed.json()["items"]} == {admin.user_id, staff.user_id}
    # The code was used up.
    again = await va.client.post(
        f"/v1/venues/{venue_id}/sub-admins",
        headers=admin.headers,
        json={"phone": staff.phone, "code": code},
    )
    problem(again, 422, "invalid_code")


async def test_wrong_code_is_422_and_the_code_dies_after_5_tries(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    staff = va.user()
    await va.client.post(
        f"/v1/venues/{venue_id}/sub-admins/code", headers=admin.headers, json={"phone": staff.phone}
    )
    code = await va.sms_code(staff.phone)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        problem(
            await va.client.post(
                f"/v1/venues/{venue_id}/sub-admins",
                headers=admin.headers,
                json={"phone": staff.phone, "code": wrong},
            ),
            422,
            "invalid_code",
        )
    dead = await va.client.post(
        f"/v1/venues/{venue_id}/sub-admins",
        headers=admin.headers,
        json={"phone": staff.phone, "code": code},
    )
    problem(dead, 422, "invalid_code")
    english = await va.client.post(
        f"/v1/venues/{venue_id}/sub-admins",
        headers={**admin.headers, "Accept-Language": "en"},
        json={"phone": staff.phone, "code": code},
    )
    assert english.json()["title"] == "Wrong or expired code"


async def test_a_code_is_bound_to_its_venue_and_phone(va) -> None:
    admin = va.user()
    venue_a, venue_b = await va.venue(admin), await va.venue(admin)
    staff, other = va.user(), va.user()
    await va.client.post(
        f"/v1/venues/{venue_a}/sub-admins/code", headers=admin.headers, json={"phone": staff.phone}
    )
    code = await va.sms_code(staff.phone)
    other_venue = await va.client.post(
        f"/v1/venues/{venue_b}/sub-admins",
        headers=admin.headers,
        json={"phone": staff.phone, "code": code},
    )
    problem(other_venue, 422, "invalid_code")
    other_phone = await va.client.post(
        f"/v1/venues/{venue_a}/sub-admins",
        headers=admin.headers,
        json={"phone": other.phone, "code": code},
    )
    problem(other_phone, 422, "invalid_code")
    right = await va.client.post(
        f"/v1/venues/{venue_a}/sub-admins",
        headers=admin.headers,
        json={"phone": staff.phone, "code": code},
    )
    assert right.status_code == 201


async def test_bad_phone_is_422_invalid_phone(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    for phone in ["12345", "23800138000", "1380013800a"]:
        problem(
            await va.client.post(
                f"/v1/venues/{venue_id}/sub-admins/code",
                headers=admin.headers,
                json={"phone": phone},
            ),
            422,
            "invalid_phone",
        )


async def test_only_the_main_admin_manages(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    staff = await va.add_sub_admin(venue_id, admin)
    colleague = await va.add_sub_admin(venue_id, admin)
    outsider = va.user()
    target = va.user()
    for caller in (staff, outsider):
        h = caller.headers
        problem(
            await va.client.post(
                f"/v1/venues/{venue_id}/sub-admins/code", headers=h, json={"phone": target.phone}
            ),
            403,
            "forbidden",
        )
        problem(
            await va.client.post(
                f"/v1/venues/{venue_id}/sub-admins",
                headers=h,
                json={"phone": target.phone, "code": "123456"},
            ),
            403,
            "forbidden",
        )
        problem(
            await va.client.delete(f"/v1/venues/{venue_id}/members/{colleague.user_id}", headers=h),
            403,
            "forbidden",
        )
        problem(
            await va.client.put(
                f"/v1/venues/{venue_id}/members/{colleague.user_id}/permissions",
                headers=h,
                json={"permissions": []},
            ),
            403,
            "forbidden",
        )
        problem(
            await va.client.put(
                f"/v1/venues/{venue_id}/rule",
                headers=h,
                json={
                    "allowed_colors": ["green", "yellow"],
                    "max_nat_age_hours": None,
                    "min_vaccine_doses": 0,
                },
            ),
            403,
            "forbidden",
        )
        problem(
            await va.client.post(
                f"/v1/venues/{venue_id}/devices", headers=h, json={"name": "北门1号闸机"}
            ),
            403,
            "forbidden",
        )
    # Nothing changed.
    members = (await va.client.get(f"/v1/venues/{venue_id}/members", headers=admin.headers)).json()[
        "items"
    ]
    assert {m["user_id"]: m["permissions"] for m in members} == {
        admin.user_id: ["reverse_scan"],
        staff.user_id: ["reverse_scan"],
        colleague.user_id: ["reverse_scan"],
    }
    rule = (await va.client.get(f"/v1/venues/{venue_id}/rule", headers=staff.headers)).json()
    assert rule["allowed_colors"] == ["green"]


async def test_permissions_change_and_removal_are_published(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    staff = await va.add_sub_admin(venue_id, admin)
    cleared = await va.client.put(
        f"/v1/venues/{venue_id}/members/{staff.user_id}/permissions",
        headers=admin.headers,
        json={"permissions": []},
    )
    assert cleared.status_code == 200
    assert cleared.json()["permissions"] == [] and cleared.json()["user_id"] == staff.user_id
    granted = await va.client.put(
        f"/v1/venues/{venue_id}/members/{staff.user_id}/permissions",
        headers=admin.headers,
        json={"permissions": ["reverse_scan"]},
    )
    assert granted.json()["permissions"] == ["reverse_scan"]
    unknown = await va.client.put(
        f"/v1/venues/{venue_id}/members/{staff.user_id}/permissions",
        headers=admin.headers,
        json={"permissions": ["fly"]},
    )
    assert unknown.status_code == 422
    problem(
        await va.client.put(
            f"/v1/venues/{venue_id}/members/{admin.user_id}/permissions",
            headers=admin.headers,
            json={"permissions": []},
        ),
        422,
        "cannot_change_main_admin",
    )
    problem(
        await va.client.delete(
            f"/v1/venues/{venue_id}/members/{admin.user_id}", headers=admin.headers
        ),
        422,
        "cannot_remove_main_admin",
    )
    removed = await va.client.delete(
        f"/v1/venues/{venue_id}/members/{staff.user_id}", headers=admin.headers
    )
    assert removed.status_code == 204
    problem(await va.client.get(f"/v1/venues/{venue_id}", headers=staff.headers), 403, "forbidden")
    problem(
        await va.client.delete(
            f"/v1/venues/{venue_id}/members/{staff.user_id}", headers=admin.headers
        ),
        404,
        "not_found",
    )
    # The verifier learns each change from the bus: read it from JetStream.
    # the main admin's joining, the staff's joining, two changes and the removal
    events = await va.published(MEMBER_CHANGED, venue_id, count=5)
    mine = [e for e in events if e["user_id"] == staff.user_id]
    assert [(e["permissions"], e["removed"]) for e in mine] == [
        (["reverse_scan"], False),
        ([], False),
        (["reverse_scan"], False),
        ([], True),
    ]
    versions = [e["version"] for e in mine]
    assert versions == sorted(set(versions)), "each change outranks the one before"

    async def outbox_empty() -> bool:
        async with va.app.state.db.sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(OutboxEvent)) == 0

    # What was published leaves the outbox (deleted once JetStream acked it).
    assert await eventually(outbox_empty, timeout=5)


async def test_default_rule_and_whole_replacement(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    default = await va.client.get(f"/v1/venues/{venue_id}/rule", headers=admin.headers)
    assert default.status_code == 200
    assert default.json() == {
        "allowed_colors": ["green"],
        "max_nat_age_hours": None,
        "min_vaccine_doses": 0,
    }
    new = {"allowed_colors": ["green", "yellow"], "max_nat_age_hours": 48, "min_vaccine_doses": 2}
    put = await va.client.put(f"/v1/venues/{venue_id}/rule", headers=admin.headers, json=new)
    assert put.status_code == 200 and put.json() == new
    assert (await va.client.get(f"/v1/venues/{venue_id}/rule", headers=admin.headers)).json() == new
    partial = await va.client.put(
        f"/v1/venues/{venue_id}/rule", headers=admin.headers, json={"allowed_colors": ["green"]}
    )
    problem(partial, 422, "validation_error")
    assert {e["field"] for e in partial.json()["errors"]} == {
        "max_nat_age_hours",
        "min_vaccine_doses",
    }
    no_green = await va.client.put(
        f"/v1/venues/{venue_id}/rule",
        headers=admin.headers,
        json={**new, "allowed_colors": ["yellow"]},
    )
    problem(no_green, 422, "green_required")
    problem(
        await va.client.put(
            f"/v1/venues/{venue_id}/rule",
            headers=admin.headers,
            json={**new, "allowed_colors": ["blue", "green"]},
        ),
        422,
        "validation_error",
    )
    problem(
        await va.client.put(
            f"/v1/venues/{venue_id}/rule",
            headers=admin.headers,
            json={**new, "min_vaccine_doses": -1},
        ),
        422,
        "validation_error",
    )
    assert (await va.client.get(f"/v1/venues/{venue_id}/rule", headers=admin.headers)).json() == new
    events = await va.published(RULE_CHANGED, venue_id, count=1)
    assert len(events) == 1  # the refused replacements published nothing
    assert events[-1]["allowed_colors"] == ["green", "yellow"]
    assert events[-1]["max_nat_age_hours"] == 48 and events[-1]["min_vaccine_doses"] == 2


def test_member_versions_outrank_a_removal_after_re_adding() -> None:
    first = next_member_version()
    removal = next_member_version(next_member_version(first))  # a change, then the removal
    assert first < removal
    # The removed row (and its version) is gone; the re-added member starts afresh and must
    # still outrank the removal the verifier holds (re-adding takes a new SMS code: later).
    time.sleep(0.01)
    assert next_member_version() > removal
    # A burst of changes may run ahead of the clock; each still goes up by one.
    assert next_member_version(10**18) == 10**18 + 1
