"""Hostile and concurrent requests at venue-admin, against the real processes (issue 10):
control characters in its texts, ids that are not ours in paths, bodies and cursors, loose
types, formulas in the access-record CSV, its OpenAPI document, and every rule of its own
that two requests at once could break, fired at two replicas on one database."""

import asyncio
import base64
import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx
import nats
import pytest

from hc_common.devstack import Stack
from hc_common.events import envelope as subjects
from hc_common.events.envelope import Envelope
from hc_common.settings import DEV_SERVICE_KEY
from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api
from tests.journeys import apply_for, sign_in
from tests.security.support import refs, resolve, two_replicas

pytestmark = pytest.mark.e2e

# Control characters a text field must refuse (NUL cannot even be stored by PostgreSQL).
CONTROLS = ["\x00", "\x1b", "\x7f", "\x85", "\t", "\n", "\r"]
VENUE_BODY = {
    "name": "南宁东站",
    "category": "train_station",
    "address": "青秀区凤岭北路",
    "region_code": "450103",
}
NOT_IDS = ["\x00", "..", "a\tb", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x" * 100, "0" * 25]


class Venue:
    """A venue made by a freshly signed-in main admin."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.admin = sign_in(api.issuer, make_phone())
        made = api.venue_admin.post("/v1/venues", headers=self.admin, json=VENUE_BODY)
        assert made.status_code == 201, made.text
        self.id: str = made.json()["venue_id"]
        self.path = f"/v1/venues/{self.id}"

    def code_for(self, phone: str) -> str:
        sent = self.api.venue_admin.post(
            f"{self.path}/sub-admins/code", headers=self.admin, json={"phone": phone}
        )
        assert sent.status_code == 202, sent.text
        messages = self.api.venue_admin.get("/dev/sms-outbox", params={"phone": phone})
        return str(messages.json()["messages"][0]["code"])

    def add_sub_admin(self) -> str:
        phone = make_phone()
        added = self.api.venue_admin.post(
            f"{self.path}/sub-admins",
            headers=self.admin,
            json={"phone": phone, "code": self.code_for(phone)},
        )
        assert added.status_code == 201, added.text
        return str(added.json()["user_id"])

    def register_device(self) -> dict[str, str]:
        made = self.api.venue_admin.post(
            f"{self.path}/devices", headers=self.admin, json={"name": "北门1号闸机"}
        )
        assert made.status_code == 201, made.text
        return dict(made.json())

    def members(self) -> list[dict[str, Any]]:
        listed = self.api.venue_admin.get(f"{self.path}/members", headers=self.admin)
        assert listed.status_code == 200, listed.text
        return list(listed.json()["items"])


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    if code is not None:
        assert response.json()["code"] == code, response.text


@pytest.fixture(scope="module")
def venue(api: Api) -> Venue:
    return Venue(api)


# --- control characters (finding 8) ------------------------------------------------------
@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_venue_texts_refuse_control_characters(api: Api, venue: Venue, char: str) -> None:
    for field in ("name", "address"):
        answer = api.venue_admin.post(
            "/v1/venues", headers=venue.admin, json={**VENUE_BODY, field: f"南宁{char}东站"}
        )
        assert_problem(answer, 422, "invalid_text")
        assert answer.json()["errors"][0]["field"] == field
    for field in ("name", "manufacturer", "model"):
        answer = api.venue_admin.post(
            f"{venue.path}/devices",
            headers=venue.admin,
            json={"name": "北门1号闸机", field: f"海康{char}"},
        )
        assert_problem(answer, 422, "invalid_text")


def test_a_lone_surrogate_is_refused_too(api: Api, venue: Venue) -> None:
    body = json.dumps({**VENUE_BODY, "name": "南宁"}, ensure_ascii=False)
    body = body.replace("南宁", "\\ud800", 1)  # JSON's escape of half a surrogate pair
    answer = api.venue_admin.post(
        "/v1/venues",
        headers={**venue.admin, "Content-Type": "application/json"},
        content=body.encode(),
    )
    assert_problem(answer, 422)


def test_codes_and_device_credentials_refuse_control_characters_and_foreign_ids(
    api: Api, venue: Venue
) -> None:
    answer = api.venue_admin.post(
        f"{venue.path}/sub-admins",
        headers=venue.admin,
        json={"phone": make_phone(), "code": "12\x0034"},
    )
    assert_problem(answer, 422)
    device = venue.register_device()
    for body in (
        {**device, "device_id": "\x00"},
        {**device, "device_id": device["device_id"] + "\x00"},
        {**device, "device_id": "../../v1/venues"},
        {**device, "device_secret": device["device_secret"] + "\x00"},
    ):
        assert_problem(api.venue_admin.post("/v1/devices/token", json=body), 422)
    # An id of our format that names no device is still the contract's 401.
    unknown = {**device, "device_id": "0" * 26}
    assert_problem(
        api.venue_admin.post("/v1/devices/token", json=unknown), 401, "invalid_credentials"
    )


# --- ids that are not ours ----------------------------------------------------------------
@pytest.mark.parametrize("bad", NOT_IDS, ids=range(len(NOT_IDS)))
def test_a_path_id_not_of_our_format_is_404(api: Api, venue: Venue, bad: str) -> None:
    quoted = quote(bad, safe="").replace(".", "%2E")
    member = venue.members()[0]["user_id"]
    for method, path in (
        ("GET", f"/v1/venues/{quoted}"),
        ("GET", f"/v1/venues/{quoted}/members"),
        ("GET", f"/v1/venues/{quoted}/rule"),
        ("GET", f"/v1/venues/{quoted}/access-records"),
        ("DELETE", f"{venue.path}/members/{quoted}"),
        ("PUT", f"{venue.path}/members/{quoted}/permissions"),
        ("DELETE", f"{venue.path}/devices/{quoted}"),
        ("DELETE", f"/v1/venues/{quoted}/members/{member}"),
    ):
        body = {"permissions": []} if method == "PUT" else None
        answer = api.venue_admin.request(method, path, headers=venue.admin, json=body)
        assert_problem(answer, 404, "not_found")
    service = {"Authorization": f"Bearer {DEV_SERVICE_KEY}"}
    context = api.venue_admin.get(f"/internal/v1/venues/{quoted}/scan-context", headers=service)
    assert_problem(context, 404)
    for params in ({"user_id": bad}, {"device_id": bad}):
        answer = api.venue_admin.get(
            f"/internal/v1/venues/{venue.id}/scan-context", headers=service, params=params
        )
        assert answer.status_code in (200, 404, 422), answer.text
        if answer.status_code == 200:
            assert answer.json()["member"] is None and answer.json()["device"] is None


@pytest.mark.parametrize("cursor", ["\x00", "a\tb", "..", "x" * 600, "0" * 25])
def test_a_cursor_that_is_not_ours_is_422(api: Api, venue: Venue, cursor: str) -> None:
    service = {"Authorization": f"Bearer {DEV_SERVICE_KEY}"}
    for path, headers in (
        ("/v1/venues", venue.admin),
        (f"{venue.path}/members", venue.admin),
        (f"{venue.path}/devices", venue.admin),
        (f"{venue.path}/access-records", venue.admin),
        ("/internal/v1/scan-snapshot", service),
    ):
        answer = api.venue_admin.get(path, headers=headers, params={"cursor": cursor})
        assert_problem(answer, 422, "invalid_cursor")
    # An access-record cursor decodes to a time and a record id: a NUL in the id is no cursor.
    forged = base64.urlsafe_b64encode(b"2026-11-28T08:00:00+00:00|\x00").decode().rstrip("=")
    answer = api.venue_admin.get(
        f"{venue.path}/access-records", headers=venue.admin, params={"cursor": forged}
    )
    assert_problem(answer, 422, "invalid_cursor")


# --- strict types (finding 11) --------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"max_nat_age_hours": True},
        {"max_nat_age_hours": "48"},
        {"max_nat_age_hours": 48.5},
        {"min_vaccine_doses": True},
        {"min_vaccine_doses": False},
        {"min_vaccine_doses": "1"},
        {"allowed_colors": "green"},
    ],
    ids=str,
)
def test_a_rule_takes_integers_as_integers(api: Api, venue: Venue, change: dict[str, Any]) -> None:
    rule = {"allowed_colors": ["green"], "max_nat_age_hours": 48, "min_vaccine_doses": 0}
    answer = api.venue_admin.put(f"{venue.path}/rule", headers=venue.admin, json={**rule, **change})
    assert_problem(answer, 422)
    assert (
        api.venue_admin.put(f"{venue.path}/rule", headers=venue.admin, json=rule).status_code == 200
    )


@pytest.mark.parametrize(
    "when",
    ["0.5", "1764316800", "-1", "2026-11-28", "2026-11-28T08:00:00", "28/11/2026", "now", "inf"],
)
def test_access_record_times_are_rfc_3339(api: Api, venue: Venue, when: str) -> None:
    for name in ("from", "to"):
        answer = api.venue_admin.get(
            f"{venue.path}/access-records", headers=venue.admin, params={name: when}
        )
        assert_problem(answer, 422)


def test_rfc_3339_times_with_an_offset_are_taken(api: Api, venue: Venue) -> None:
    for when in ("2026-11-28T08:00:00Z", "2026-11-28T16:00:00.250+08:00", "2026-11-28t08:00:00z"):
        answer = api.venue_admin.get(
            f"{venue.path}/access-records", headers=venue.admin, params={"from": when, "to": when}
        )
        assert answer.status_code == 200, answer.text


# --- formulas in the CSV export (finding 9) ----------------------------------------------------
FORMULA_NAMES = ["=cmd|' /C calc'!A0", "+李秀华", "-李秀华", "@SUM(1+1)"]


def test_the_csv_export_neutralises_formulas(api: Api) -> None:
    venue = Venue(api)
    family = sign_in(api.issuer, make_phone())
    scanned: dict[str, str] = {}  # record id -> the name of the card scanned
    for name in FORMULA_NAMES:
        applied = apply_for(api.issuer, family, make_id_number(date(1950, 3, 8)), name)
        assert applied.status_code == 201, applied.text
        masked = applied.json()["holder"]["masked_name"]
        assert masked[0] == name[0]  # what the issuer's masking keeps of it
        answer = api.verifier.post(
            "/v1/verify",
            headers=venue.admin,
            json={"qr": applied.json()["qr"], "venue_id": venue.id},
        )
        assert answer.status_code == 200, answer.text
        scanned[answer.json()["record_id"]] = masked

    def exported() -> list[dict[str, str]] | None:
        response = api.venue_admin.get(
            f"{venue.path}/access-records", headers={**venue.admin, "Accept": "text/csv"}
        )
        assert response.status_code == 200, response.text
        # As a spreadsheet reads it: the cells, quoted or not, as written.
        rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
        return rows if {row["record_id"] for row in rows} >= set(scanned) else None

    rows = poll(exported, 5.0)
    assert rows, "access records missing after 5 s"
    for row in rows:
        masked = scanned[row["record_id"]]
        assert row["masked_name"] == "'" + masked, row
        for cell in row.values():
            assert not cell or cell[0] not in "=+-@\t\r", row


# --- the OpenAPI document (finding 11) ---------------------------------------------------------
def test_the_openapi_document_declares_every_credential(api: Api) -> None:
    document = api.venue_admin.get("/openapi.json").json()
    for ref in refs(document):
        resolve(document, ref)
    schemes = document["components"]["securitySchemes"]
    assert (schemes["UserToken"]["type"], schemes["UserToken"]["scheme"]) == ("http", "bearer")
    assert (schemes["ServiceKey"]["type"], schemes["ServiceKey"]["scheme"]) == ("http", "bearer")
    open_paths = {"/v1/devices/token", "/.well-known/jwks.json", "/dev/sms-outbox"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            security = operation.get("security")
            if path.startswith("/internal/"):
                assert security == [{"ServiceKey": []}], (method, path)
            elif path.startswith("/v1/") and path not in open_paths:
                assert security == [{"UserToken": []}], (method, path)
            else:
                assert not security, (method, path)
    code = document["paths"]["/v1/venues/{venue_id}/sub-admins/code"]["post"]["responses"]
    assert "429" in code


def test_the_error_answers_are_documented_as_problem_json(api: Api) -> None:
    document = api.venue_admin.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    content = response["content"]
                    problem = content.get("application/problem+json", {})
                    assert "schema" in problem, (method, path, status, content)


# --- races: two replicas on one database ------------------------------------------------------
@pytest.fixture(scope="module")
def replicas(stack: Stack) -> Iterator[list[str]]:
    """venue-admin's URL and a second replica's, on the same database and NATS."""
    with two_replicas(stack, "venue-admin") as urls:
        yield urls


async def at_once(
    urls: list[str], n: int, method: str, path: str, headers: dict[str, str], bodies: list[Any]
) -> list[httpx.Response]:
    """`n` requests sent together, spread over the replicas."""
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
    try:
        return await asyncio.gather(
            *(
                clients[i % len(clients)].request(
                    method, path, headers=headers, json=bodies[i % len(bodies)]
                )
                for i in range(n)
            )
        )
    finally:
        for client in clients:
            await client.aclose()


def statuses(answers: list[httpx.Response]) -> list[int]:
    return sorted(a.status_code for a in answers)


async def venue_events(
    stack: Stack, subject: str, venue_id: str, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """The venue's events of `subject` (oldest first), once at least `count` are published."""
    nc = await stack.nats_connect()
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            sub = await js.pull_subscribe(subject, stream="VENUES")
            found: list[dict[str, Any]] = []
            try:
                while True:
                    try:
                        messages = await sub.fetch(500, timeout=0.5)
                    except (TimeoutError, nats.errors.TimeoutError):
                        # A slow fetch is not the end of the stream (the fuzzer leaves it
                        # long): read on while the consumer still has messages pending.
                        if (await sub.consumer_info()).num_pending == 0:
                            break
                        continue
                    for message in messages:
                        data = Envelope.from_bytes(message.data).data
                        if data.get("venue_id") == venue_id:
                            found.append(data)
            finally:
                await sub.unsubscribe()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


N = 8


def test_a_device_deleted_at_once_is_deleted_once(
    api: Api, stack: Stack, replicas: list[str]
) -> None:
    venue = Venue(api)
    device = venue.register_device()
    path = f"{venue.path}/devices/{device['device_id']}"
    answers = asyncio.run(at_once(replicas, N, "DELETE", path, venue.admin, [None]))
    assert statuses(answers) == [204] + [404] * (N - 1), [a.text for a in answers]
    events = asyncio.run(venue_events(stack, subjects.DEVICE_CHANGED, venue.id, 2))
    mine = [e for e in events if e["device_id"] == device["device_id"]]
    assert [e["active"] for e in mine] == [True, False], mine


def test_a_member_removed_at_once_is_removed_once(
    api: Api, stack: Stack, replicas: list[str]
) -> None:
    venue = Venue(api)
    user_id = venue.add_sub_admin()
    path = f"{venue.path}/members/{user_id}"
    answers = asyncio.run(at_once(replicas, N, "DELETE", path, venue.admin, [None]))
    assert statuses(answers) == [204] + [404] * (N - 1), [a.text for a in answers]
    assert [m["user_id"] for m in venue.members()] != [] and user_id not in {
        m["user_id"] for m in venue.members()
    }
    events = asyncio.run(venue_events(stack, subjects.MEMBER_CHANGED, venue.id, 3))
    mine = [e for e in events if e["user_id"] == user_id]
    assert [e["removed"] for e in mine] == [False, True], mine


def test_one_sub_admin_added_at_once_is_one_member(
    api: Api, stack: Stack, replicas: list[str]
) -> None:
    venue = Venue(api)
    phone = make_phone()
    body = {"phone": phone, "code": venue.code_for(phone)}
    answers = asyncio.run(
        at_once(replicas, N, "POST", f"{venue.path}/sub-admins", venue.admin, [body])
    )
    codes = statuses(answers)
    assert set(codes) <= {201, 422} and 201 in codes, [a.text for a in answers]
    added = {a.json()["user_id"] for a in answers if a.status_code == 201}
    assert len(added) == 1
    (user_id,) = added
    members = [m for m in venue.members() if m["user_id"] == user_id]
    assert len(members) == 1 and members[0]["role"] == "sub_admin"
    events = asyncio.run(venue_events(stack, subjects.MEMBER_CHANGED, venue.id, 2))
    assert len([e for e in events if e["user_id"] == user_id]) == 1, events


def test_rules_set_at_once_leave_the_verifier_the_rule_that_is_stored(
    api: Api, stack: Stack, replicas: list[str]
) -> None:
    venue = Venue(api)
    rules = [
        {"allowed_colors": ["green"], "max_nat_age_hours": hours, "min_vaccine_doses": hours % 3}
        for hours in range(1, N + 1)
    ]
    answers = asyncio.run(at_once(replicas, N, "PUT", f"{venue.path}/rule", venue.admin, rules))
    assert statuses(answers) == [200] * N, [a.text for a in answers]
    stored = api.venue_admin.get(f"{venue.path}/rule", headers=venue.admin).json()
    events = asyncio.run(venue_events(stack, subjects.RULE_CHANGED, venue.id, N))
    assert len(events) == N
    versions = [e["version"] for e in events]
    assert len(set(versions)) == N, versions
    newest = max(events, key=lambda e: e["version"])
    assert {k: newest[k] for k in stored} == stored, (newest, stored)


def test_permissions_set_at_once_leave_the_verifier_what_is_stored(
    api: Api, stack: Stack, replicas: list[str]
) -> None:
    venue = Venue(api)
    user_id = venue.add_sub_admin()
    bodies = [{"permissions": ["reverse_scan"] if i % 2 else []} for i in range(N)]
    path = f"{venue.path}/members/{user_id}/permissions"
    answers = asyncio.run(at_once(replicas, N, "PUT", path, venue.admin, bodies))
    assert statuses(answers) == [200] * N, [a.text for a in answers]
    (stored,) = [m for m in venue.members() if m["user_id"] == user_id]
    events = asyncio.run(venue_events(stack, subjects.MEMBER_CHANGED, venue.id, N + 2))
    mine = [e for e in events if e["user_id"] == user_id]
    assert len(mine) == N + 1, mine  # added, then each change
    versions = [e["version"] for e in mine]
    assert len(set(versions)) == len(versions), versions
    newest = max(mine, key=lambda e: e["version"])
    assert newest["permissions"] == stored["permissions"], (newest, stored)
