"""A venue's main admin, its staff and its gates, end to end over HTTP: what venue-admin
sets up takes effect at the verifier, and every scan comes back as an access record."""

import csv
import io
import time
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api
from tests.journeys import apply_for, sign_in

pytestmark = pytest.mark.e2e

CSV_HEADER = (
    "record_id,checked_at,checked_at_local,decision,reasons,reasons_text,masked_name,color,"
    "scanner_kind,scanner_id,scanner_name"
)


def credential(api: Api) -> dict[str, Any]:
    family = sign_in(api.issuer, make_phone())
    id_number = make_id_number(date(1949, 5, 12))
    applied = apply_for(api.issuer, family, id_number, "黄永华")
    assert applied.status_code == 201, applied.text
    return applied.json()


class Venue:
    """A freshly registered venue and its main admin."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.admin = sign_in(api.issuer, make_phone())
        made = api.venue_admin.post(
            "/v1/venues",
            headers=self.admin,
            json={
                "name": "南宁地铁1号线朝阳广场站",
                "category": "metro",
                "address": "兴宁区",
                "region_code": "450102",
            },
        )
        assert made.status_code == 201, made.text
        self.id = made.json()["venue_id"]
        members = api.venue_admin.get(f"/v1/venues/{self.id}/members", headers=self.admin)
        (main,) = members.json()["items"]
        assert main["role"] == "main_admin"
        self.admin_id = main["user_id"]

    @property
    def path(self) -> str:
        return f"/v1/venues/{self.id}"

    def add_sub_admin(self) -> tuple[dict[str, str], str]:
        return self.add_sub_admin_phone(make_phone())

    def add_sub_admin_phone(self, phone: str) -> tuple[dict[str, str], str]:
        """Adds the phone's owner as sub-admin: their sign-in headers and user id."""
        sent = self.send_code(phone)
        assert sent.status_code == 202, sent.text
        code = self.api.venue_admin.get("/dev/sms-outbox", params={"phone": phone}).json()[
            "messages"
        ][0]["code"]
        member = self.api.venue_admin.post(
            f"{self.path}/sub-admins", headers=self.admin, json={"phone": phone, "code": code}
        )
        assert member.status_code == 201, member.text
        assert member.json()["permissions"] == ["reverse_scan"]
        return sign_in(self.api.issuer, phone), member.json()["user_id"]

    def register_device(self) -> dict[str, str]:
        made = self.api.venue_admin.post(
            f"{self.path}/devices",
            headers=self.admin,
            json={"name": "北门1号闸机", "manufacturer": "海康", "model": "DS-K3B"},
        )
        assert made.status_code == 201, made.text
        assert set(made.json()) == {"device_id", "device_secret"}
        return made.json()

    def send_code(self, phone: str) -> httpx.Response:
        return self.api.venue_admin.post(
            f"{self.path}/sub-admins/code", headers=self.admin, json={"phone": phone}
        )

    def scan(self, headers: dict[str, str], qr: str) -> httpx.Response:
        return self.api.verifier.post(
            "/v1/verify", headers=headers, json={"qr": qr, "venue_id": self.id}
        )

    def records(self, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
        return self.api.venue_admin.get(
            f"{self.path}/access-records",
            headers=self.admin if headers is None else headers,
            params={"limit": "500", **params},
        )


def device_token(api: Api, device: dict[str, str]) -> httpx.Response:
    return api.venue_admin.post("/v1/devices/token", json=device)


def gate(api: Api, token: dict[str, str], qr: str, **headers: str) -> httpx.Response:
    return api.verifier.post("/v1/gate/verify", headers={**token, **headers}, json={"qr": qr})


def test_gate_device_scans_until_deleted(api: Api) -> None:
    venue = Venue(api)
    card = credential(api)
    device = venue.register_device()
    issued = device_token(api, device)
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "Bearer" and issued.json()["expires_in"] == 86400
    token = {"Authorization": "Bearer " + issued.json()["access_token"]}
    wrong = device_token(api, {**device, "device_secret": device["device_secret"] + "x"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"

    answer = poll(lambda: (r := gate(api, token, card["qr"])).status_code == 200 and r, 2.0)
    assert answer, "the new gate could not scan within 2 s"
    body = answer.json()
    assert set(body) == {"open", "decision", "color", "lines", "record_id"}
    assert body["open"] is True and body["decision"] == "pass" and body["color"] == "green"
    assert body["lines"][0] == "黄*华"
    assert body["lines"] == ["黄*华", "绿码", "无核酸记录", "通行"] and body["record_id"]

    english = gate(api, token, card["qr"], **{"Accept-Language": "en"})
    assert english.status_code == 200
    assert english.json()["lines"] == ["黄*华", "Green code", "No NAT result", "Pass"]
    assert english.json()["open"] is True

    denied = gate(api, token, "GXHC1:not.a.credential")
    assert denied.status_code == 200
    assert denied.json()["open"] is False and denied.json()["decision"] == "deny"
    assert denied.json()["lines"] == ["无效凭证", "禁止通行"]

    # Only the main admin deletes a device.
    staff, _ = venue.add_sub_admin()
    refused = api.venue_admin.delete(f"{venue.path}/devices/{device['device_id']}", headers=staff)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"

    deleted = api.venue_admin.delete(
        f"{venue.path}/devices/{device['device_id']}", headers=venue.admin
    )
    assert deleted.status_code == 204
    refused_token = poll(lambda: (r := gate(api, token, card["qr"])).status_code == 401 and r, 2.0)
    assert refused_token, "a deleted device's token still scans after 2 s"
    assert refused_token.json()["code"] == "unauthorized"
    again = device_token(api, device)
    assert again.status_code == 401 and again.json()["code"] == "invalid_credentials"
    gone = api.venue_admin.delete(
        f"{venue.path}/devices/{device['device_id']}", headers=venue.admin
    )
    assert gone.status_code == 404


def test_reverse_scan_permission_removed(api: Api) -> None:
    venue = Venue(api)
    card = credential(api)
    staff, staff_id = venue.add_sub_admin()
    first = poll(lambda: (r := venue.scan(staff, card["qr"])).status_code == 200 and r, 2.0)
    assert first, "the new sub-admin could not scan within 2 s"
    assert first.json()["decision"] == "pass"

    put = api.venue_admin.put(
        f"{venue.path}/members/{staff_id}/permissions",
        headers=venue.admin,
        json={"permissions": []},
    )
    assert put.status_code == 200, put.text
    assert put.json()["user_id"] == staff_id and put.json()["permissions"] == []
    refused = poll(lambda: (r := venue.scan(staff, card["qr"])).status_code == 403 and r, 2.0)
    assert refused, "the sub-admin still scans 2 s after losing reverse_scan"
    assert refused.json()["code"] == "forbidden"

    # The sub-admin cannot give it back to themselves.
    self_grant = api.venue_admin.put(
        f"{venue.path}/members/{staff_id}/permissions",
        headers=staff,
        json={"permissions": ["reverse_scan"]},
    )
    assert self_grant.status_code == 403 and self_grant.json()["code"] == "forbidden"
    # The main admin can.
    api.venue_admin.put(
        f"{venue.path}/members/{staff_id}/permissions",
        headers=venue.admin,
        json={"permissions": ["reverse_scan"]},
    )
    assert poll(lambda: venue.scan(staff, card["qr"]).status_code == 200, 2.0)


def test_rule_change_takes_effect(api: Api) -> None:
    venue = Venue(api)
    card = credential(api)
    default = api.venue_admin.get(f"{venue.path}/rule", headers=venue.admin)
    assert default.status_code == 200
    assert default.json() == {
        "allowed_colors": ["green"],
        "max_nat_age_hours": None,
        "min_vaccine_doses": 0,
    }
    assert venue.scan(venue.admin, card["qr"]).json()["decision"] == "pass"

    rule = {"allowed_colors": ["green"], "max_nat_age_hours": 48, "min_vaccine_doses": 0}
    put = api.venue_admin.put(f"{venue.path}/rule", headers=venue.admin, json=rule)
    assert put.status_code == 200, put.text
    assert put.json() == rule
    assert api.venue_admin.get(f"{venue.path}/rule", headers=venue.admin).json() == rule
    denied = poll(
        lambda: (
            (b := venue.scan(venue.admin, card["qr"]).json())["reasons"] == ["nat_missing"] and b
        ),
        2.0,
    )
    assert denied, "the rule change did not reach the verifier within 2 s"
    assert denied["decision"] == "deny" and denied["holder"]["masked_name"] == "黄*华"

    no_green = api.venue_admin.put(
        f"{venue.path}/rule", headers=venue.admin, json={**rule, "allowed_colors": ["yellow"]}
    )
    assert no_green.status_code == 422

    back = {"allowed_colors": ["green"], "max_nat_age_hours": None, "min_vaccine_doses": 0}
    assert (
        api.venue_admin.put(f"{venue.path}/rule", headers=venue.admin, json=back).status_code == 200
    )
    assert poll(lambda: venue.scan(venue.admin, card["qr"]).json()["decision"] == "pass", 2.0)


def test_every_scan_becomes_an_access_record(api: Api) -> None:
    venue = Venue(api)
    card = credential(api)
    staff, staff_id = venue.add_sub_admin()
    device = venue.register_device()
    token = {"Authorization": "Bearer " + device_token(api, device).json()["access_token"]}

    # (record_id, decision, scanner kind, scanner id), in the order of the scans.
    scans: list[tuple[str, str, str, str]] = []
    first = poll(lambda: (r := venue.scan(staff, card["qr"])).status_code == 200 and r, 2.0)
    assert first, first
    scans.append((first.json()["record_id"], "pass", "user", staff_id))
    at_gate = poll(lambda: (r := gate(api, token, card["qr"])).status_code == 200 and r, 2.0)
    assert at_gate, at_gate
    scans.append((at_gate.json()["record_id"], "pass", "device", device["device_id"]))
    forged = venue.scan(venue.admin, "GXHC1:forged")
    assert forged.json()["decision"] == "deny"
    scans.append((forged.json()["record_id"], "deny", "user", venue.admin_id))
    api.venue_admin.put(
        f"{venue.path}/rule",
        headers=venue.admin,
        json={"allowed_colors": ["green"], "max_nat_age_hours": 48, "min_vaccine_doses": 0},
    )
    strict = poll(
        lambda: (b := venue.scan(venue.admin, card["qr"]).json())["decision"] == "deny" and b, 2.0
    )
    assert strict, "rule change"
    # The polling may have scanned (and recorded) more than once: count every answer.
    scans.append((strict["record_id"], "deny", "user", venue.admin_id))
    gate_deny = gate(api, token, card["qr"]).json()
    assert gate_deny["decision"] == "deny" and gate_deny["open"] is False
    scans.append((gate_deny["record_id"], "deny", "device", device["device_id"]))
    wanted = {record_id for record_id, *_ in scans}
    assert len(wanted) == len(scans)

    def stored() -> list[dict[str, Any]] | None:
        items = venue.records().json()["items"]
        return items if wanted <= {i["record_id"] for i in items} else None

    items = poll(stored, 5.0)
    assert items, f"access records missing after 5 s: {venue.records().json()}"
    # Polls before the rule took effect also scanned and were recorded; ours are all there.
    by_id = {i["record_id"]: i for i in items}
    assert len(by_id) == len(items), "a record stored twice"
    checked = [datetime.fromisoformat(i["checked_at"]) for i in items]
    assert checked == sorted(checked, reverse=True), "not newest first"
    ours = [by_id[record_id] for record_id, *_ in scans]
    assert [i["record_id"] for i in items if i["record_id"] in wanted] == [
        r for r, *_ in reversed(scans)
    ]
    for (_, decision, kind, scanner_id), item in zip(scans, ours, strict=True):
        assert item["decision"] == decision, item
        assert item["scanner"] == {"kind": kind, "id": scanner_id}, item
        assert item["checked_at"].endswith("Z")
    assert ours[0]["masked_name"] == "黄*华" and ours[0]["color"] == "green"
    assert ours[0]["reasons"] == []
    assert ours[2]["reasons"] == ["credential_invalid"] and ours[2]["masked_name"] is None
    assert ours[3]["reasons"] == ["nat_missing"] and ours[3]["masked_name"] == "黄*华"
    for item in items:
        assert "黄永华" not in str(item)

    # The decision filter.
    denies = venue.records(decision="deny").json()["items"]
    assert denies and all(i["decision"] == "deny" for i in denies)
    assert {i["record_id"] for i in denies} == {
        i["record_id"] for i in items if i["decision"] == "deny"
    }
    passes = venue.records(decision="pass").json()["items"]
    assert {i["record_id"] for i in passes} == {
        i["record_id"] for i in items if i["decision"] == "pass"
    }
    assert venue.records(decision="maybe").status_code == 422

    # The time window: `from` inclusive, `to` exclusive (times are shown in whole seconds).
    middle = ours[2]["checked_at"]
    since = [i["record_id"] for i in venue.records(**{"from": middle}).json()["items"]]
    before = [i["record_id"] for i in venue.records(to=middle).json()["items"]]
    assert since + before == [i["record_id"] for i in items]
    assert ours[2]["record_id"] in since and set(before) == {
        i["record_id"] for i in items if i["checked_at"] < middle
    }
    later = (datetime.fromisoformat(items[0]["checked_at"]) + timedelta(seconds=1)).isoformat()
    assert venue.records(**{"from": later}).json()["items"] == []

    # Pages with a cursor walk the same rows.
    walked: list[str] = []
    cursor: str | None = None
    while True:
        page = venue.records(limit="2", **({"cursor": cursor} if cursor else {})).json()
        walked += [i["record_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [i["record_id"] for i in items]

    # The CSV export: the contract's header, one row per scan, the same order.
    exported = api.venue_admin.get(
        f"{venue.path}/access-records", headers={**venue.admin, "Accept": "text/csv"}
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert lines[0] == CSV_HEADER
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["record_id"] for r in rows] == [i["record_id"] for i in items]
    for row in rows:
        item = by_id[row["record_id"]]
        assert row["decision"] == item["decision"]
        assert row["reasons"] == ";".join(item["reasons"])
        assert row["masked_name"] == (item["masked_name"] or "")
        assert row["color"] == (item["color"] or "")
        assert (row["scanner_kind"], row["scanner_id"]) == (
            item["scanner"]["kind"],
            item["scanner"]["id"],
        )
    denied_csv = api.venue_admin.get(
        f"{venue.path}/access-records",
        params={"decision": "deny"},
        headers={**venue.admin, "Accept": "text/csv"},
    )
    denied_rows = list(csv.DictReader(io.StringIO(denied_csv.content.decode("utf-8-sig"))))
    assert [r["record_id"] for r in denied_rows] == [i["record_id"] for i in denies]

    # A sub-admin is a member and reads them too; a non-member gets 403, in either form.
    assert venue.records(staff).status_code == 200
    outsider = sign_in(api.issuer, make_phone())
    for accept in ("application/json", "text/csv"):
        refused = venue.records({**outsider, "Accept": accept})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert refused.headers["content-type"] == "application/problem+json"
    english = venue.records({**outsider, "Accept-Language": "en"}).json()
    chinese = venue.records(outsider).json()
    assert english["code"] == chinese["code"] == "forbidden"
    assert english["title"].isascii() and english["detail"].isascii()
    assert not chinese["title"].isascii() and not chinese["detail"].isascii()
    assert venue.records({}).status_code == 401


def test_a_scan_is_recorded_at_its_own_venue_only(api: Api) -> None:
    here, there = Venue(api), Venue(api)
    card = credential(api)
    record_id = here.scan(here.admin, card["qr"]).json()["record_id"]
    assert poll(
        lambda: [i["record_id"] for i in here.records().json()["items"]] == [record_id], 5.0
    )
    assert there.records(there.admin).json()["items"] == []
    # Each main admin is a stranger at the other's venue.
    assert there.records(here.admin).status_code == 403


def test_removed_sub_admin_stops_scanning_and_can_be_added_back(api: Api) -> None:
    venue = Venue(api)
    card = credential(api)
    phone = make_phone()
    staff, staff_id = venue.add_sub_admin_phone(phone)
    assert poll(lambda: venue.scan(staff, card["qr"]).status_code == 200, 2.0)
    # A change of permissions first, so the member has a history of versions.
    for permissions in ([], ["reverse_scan"]):
        put = api.venue_admin.put(
            f"{venue.path}/members/{staff_id}/permissions",
            headers=venue.admin,
            json={"permissions": permissions},
        )
        assert put.status_code == 200, put.text
    assert poll(lambda: venue.scan(staff, card["qr"]).status_code == 200, 2.0)

    removed = api.venue_admin.delete(f"{venue.path}/members/{staff_id}", headers=venue.admin)
    assert removed.status_code == 204
    members = api.venue_admin.get(f"{venue.path}/members", headers=venue.admin).json()["items"]
    assert [m["user_id"] for m in members] == [venue.admin_id]
    refused = poll(lambda: (r := venue.scan(staff, card["qr"])).status_code == 403 and r, 2.0)
    assert refused, "a removed sub-admin still scans after 2 s"
    assert venue.records(staff).status_code == 403
    main = api.venue_admin.delete(f"{venue.path}/members/{venue.admin_id}", headers=venue.admin)
    assert main.status_code == 422

    # The same staff member hired again: they scan again within 2 s. Codes to one number are
    # spaced (a minute by the contract, 3 s in this test stack), so this waits for the
    # Retry-After the refusal gives.
    too_soon = venue.send_code(phone)
    assert too_soon.status_code == 429 and too_soon.json()["code"] == "too_many_requests"
    wait = int(too_soon.headers["Retry-After"])
    assert 0 < wait <= 3
    time.sleep(wait + 0.5)
    again, again_id = venue.add_sub_admin_phone(phone)
    assert again_id == staff_id
    back = poll(lambda: (r := venue.scan(again, card["qr"])).status_code == 200 and r, 2.0)
    assert back, (
        f"a re-added sub-admin still cannot scan after 2 s: {venue.scan(again, card['qr']).text}"
    )
