"""Contact tracing at health-records, venue-admin stood in for by a fake: the request's bounds
(422 with stable codes), an unknown case (404), the contacts named masked, a preview that
changes nothing, an applied trace that turns only green codes (one status event each, the
code's history), the audit list and a trace read again."""

import asyncio
import os
import zlib
from datetime import datetime, timedelta
from typing import Any

import httpx
import nats
import orjson
import pytest
from fastapi import FastAPI
from nats.js.api import DeliverPolicy
from sqlalchemy import select

from hc_common.clock import rfc3339, utcnow
from hc_common.crypto import Sealer, decode_key
from hc_common.deps import SessionDep
from hc_common.events.envelope import STATUS_CHANGED
from hc_common.ids import new_id
from hc_common.masking import mask_id_number
from hc_common.testing import eventually
from health_records.clients.venue_admin import CoPresence, VenueAdminClient, Visit
from health_records.deps import PersonServiceDep
from health_records.person.models import CodeChange
from health_records.person.service import PersonService
from health_records.testing import AUTHORITY, LAB, SERVICE, new_id_number, status_of
from health_records.tracing import service as tracing_service_module
from health_records.tracing.masking import IdNumberMasker
from health_records.tracing.router import tracing_service
from health_records.tracing.service import TracingService

T0 = utcnow().replace(microsecond=0) - timedelta(days=1)


class FakeVenueAdmin:
    """venue-admin's co-presence answer, as set by the test; the questions it was asked."""

    def __init__(self) -> None:
        self.answer = CoPresence.of([], [], T0 - timedelta(days=27))
        self.asked: list[tuple[str, datetime, datetime, int]] = []

    async def co_presence(
        self, subject_id: str, start: datetime, end: datetime, window_minutes: int
    ) -> CoPresence:
        self.asked.append((subject_id, start, end, window_minutes))
        return self.answer


async def read_health_events(url: str, subjects: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The status events of these subjects in the HEALTH stream, by subject, in order."""
    nc = await nats.connect(url)
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        sub = await nc.jetstream().subscribe(
            STATUS_CHANGED, stream="HEALTH", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                return found
            assert not any(n in msg.data.decode() for n in IDS), "an ID number in an event"
            event = orjson.loads(msg.data)
            if event["data"]["subject_id"] in subjects:
                found.setdefault(event["data"]["subject_id"], []).append(event)
    finally:
        await nc.close()


def masker(app: FastAPI, persons: PersonService) -> IdNumberMasker:
    return IdNumberMasker(decode_key(app.state.settings.data_key), persons.sealer)


# Every ID number the tests here make: none may appear in an event.
IDS: list[str] = []


@pytest.fixture(scope="module")
def venues(hr_app: FastAPI) -> FakeVenueAdmin:
    fake = FakeVenueAdmin()

    async def with_fake(session: SessionDep, persons: PersonServiceDep) -> TracingService:
        return TracingService(session, persons, fake, masker(hr_app, persons))  # type: ignore[arg-type]

    hr_app.dependency_overrides[tracing_service] = with_fake
    return fake


async def person(hr, name: str, color: str = "green") -> tuple[str, str]:
    """A person with a name on file and a colour: (ID number, subject id)."""
    id_number = new_id_number()
    IDS.append(id_number)
    made = await hr.post(
        "/internal/v1/subjects", headers=SERVICE, json={"id_number": id_number, "name": name}
    )
    assert made.status_code == 200, made.text
    if color != "green":
        set_ = await hr.post(
            "/v1/codes",
            headers=AUTHORITY,
            json={"id_number": id_number, "color": color, "reason": "测试"},
        )
        assert set_.status_code == 200, set_.text
    return id_number, made.json()["subject_id"]


def body(id_number: str, **extra: Any) -> dict[str, Any]:
    return {
        "id_number": id_number,
        "from": rfc3339(T0 - timedelta(days=2)),
        "to": rfc3339(T0 + timedelta(hours=1)),
        "window_minutes": 30,
        **extra,
    }


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"window_minutes": 0}, "invalid_window", "window_minutes"),
        ({"window_minutes": 241}, "invalid_window", "window_minutes"),
        ({"to": rfc3339(T0 - timedelta(days=3))}, "invalid_period", "to"),
        ({"to": rfc3339(T0 + timedelta(days=12, seconds=1))}, "period_too_long", "to"),
        ({"id_number": "450103195003081234"}, "invalid_id_number", "id_number"),
        ({"apply_color": "green"}, "validation_error", "apply_color"),
        ({"from": 1764000000}, "invalid_time", "from"),
        ({"to": "2026-11-27 08:00"}, "invalid_time", "to"),
        ({"reason": "a\x00b"}, "invalid_text", "reason"),
    ],
)
async def test_requests_out_of_bounds_are_422_with_a_stable_code(
    hr, venues, change, code, field
) -> None:
    response = await hr.post(
        "/v1/tracing", headers=AUTHORITY, json={**body(new_id_number()), **change}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_the_bounds_themselves_are_accepted(hr, venues) -> None:
    case, _ = await person(hr, "王小明")
    for window in (1, 240):
        exactly = body(case, to=rfc3339(T0 + timedelta(days=12)), window_minutes=window)
        response = await hr.post("/v1/tracing", headers=AUTHORITY, json=exactly)
        assert response.status_code == 200, response.text


async def test_an_unknown_case_is_404_and_venue_admin_is_not_asked(hr, venues) -> None:
    asked = len(venues.asked)
    response = await hr.post("/v1/tracing", headers=AUTHORITY, json=body(new_id_number()))
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    assert len(venues.asked) == asked


async def test_only_the_authority_may_trace(hr, venues) -> None:
    case, _ = await person(hr, "王小明")
    assert (await hr.post("/v1/tracing", headers=LAB, json=body(case))).status_code == 403
    assert (await hr.post("/v1/tracing", json=body(case))).status_code == 401
    assert (await hr.get("/v1/tracing", headers=SERVICE)).status_code == 401
    assert (await hr.get(f"/v1/tracing/{new_id()}", headers=LAB)).status_code == 403


async def test_a_case_without_scans_gets_empty_lists(hr, venues) -> None:
    case, subject = await person(hr, "王小明")
    venues.answer = CoPresence.of([], [], T0 - timedelta(days=27))
    response = await hr.post("/v1/tracing", headers=AUTHORITY, json=body(case))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["visits"] == [] and answer["contacts"] == []
    assert answer["case"] == {
        "masked_name": "王*明",
        "masked_id_number": case[:6] + "********" + case[-4:],
    }
    assert answer["records_kept_since"] is None  # `from` is within the retention period
    assert venues.asked[-1][0] == subject


async def test_preview_then_apply_turns_only_green_contacts(hr, venues, hr_app, nats_url) -> None:
    async def health_events(subjects: set[str]) -> dict[str, list[dict[str, Any]]] | None:
        found = await read_health_events(nats_url, subjects)
        return found if green_subject in found else None

    case, _ = await person(hr, "王小明")
    green, green_subject = await person(hr, "李秀华")
    yellow, yellow_subject = await person(hr, "张三", "yellow")
    red, red_subject = await person(hr, "赵四", "red")
    venue = new_id()
    # The names the scans showed; the yellow contact's scan showed none: the name on file.
    shown = {green_subject: "李*华", yellow_subject: None, red_subject: "赵*"}
    venues.answer = CoPresence.of(
        [Visit(venue_id=venue, venue_name="南宁东站", checked_at=T0)],
        [
            (s, venue, rfc3339(T0 + timedelta(minutes=i)), shown.get(s, "王*"))
            for i, s in enumerate([green_subject, yellow_subject, new_id(), red_subject])
        ],
        # `from` reaches past the cut-off: the answer says so.
        T0 - timedelta(days=1),
    )
    before = (await status_of(hr, green))["version"]

    preview = await hr.post("/v1/tracing", headers=AUTHORITY, json=body(case))
    assert preview.status_code == 200, preview.text
    answer = preview.json()
    assert answer["visits"] == [
        {"venue_id": venue, "venue_name": "南宁东站", "checked_at": rfc3339(T0)}
    ]
    assert [
        (c["masked_name"], c["masked_id_number"], c["color_before"], c["color_after"])
        for c in answer["contacts"]
    ] == [
        ("李*华", green[:6] + "********" + green[-4:], "green", "green"),
        ("张*", yellow[:6] + "********" + yellow[-4:], "yellow", "yellow"),
        ("赵*", red[:6] + "********" + red[-4:], "red", "red"),
    ]
    assert [(c["venue_id"], c["venue_name"], c["checked_at"]) for c in answer["contacts"]] == [
        (venue, "南宁东站", rfc3339(T0 + timedelta(minutes=i))) for i in (0, 1, 3)
    ]
    assert answer["unknown_contacts"] == 1 and answer["changed"] == 0
    assert answer["records_kept_since"] == rfc3339(T0 - timedelta(days=1))
    assert (await status_of(hr, green))["version"] == before  # a preview changes nothing

    applied = await hr.post("/v1/tracing", headers=AUTHORITY, json=body(case, apply_color="yellow"))
    assert applied.status_code == 200, applied.text
    trace = applied.json()
    assert [(c["color_before"], c["color_after"]) for c in trace["contacts"]] == [
        ("green", "yellow"),
        ("yellow", "yellow"),
        ("red", "red"),
    ]
    assert trace["changed"] == 1
    status = await status_of(hr, green)
    assert status["color"] == "yellow" and status["version"] == before + 1
    assert status["color_reason"] == f"时空伴随 {trace['trace_id']}"
    assert (await status_of(hr, yellow))["color_reason"] == "测试"
    assert (await status_of(hr, red))["color"] == "red"

    async with hr_app.state.db.sessionmaker() as session:
        history = (
            await session.scalars(
                select(CodeChange).where(CodeChange.reason == f"时空伴随 {trace['trace_id']}")
            )
        ).all()
        assert [c.color for c in history] == ["yellow"]
    # One status event for the contact turned, none for the others; no ID number in any.
    events = await eventually(lambda: health_events({green_subject, yellow_subject}), timeout=10)
    assert [(e["data"]["color"], e["data"]["version"]) for e in events[green_subject]] == [
        ("yellow", before + 1)
    ]
    assert events[green_subject][0]["data"]["color_reason"] == f"时空伴随 {trace['trace_id']}"
    assert yellow_subject not in events or all(
        e["data"]["color_reason"] == "测试" for e in events[yellow_subject]
    )

    # Read again, the same answer; the audit list has both, newest first.
    again = await hr.get(f"/v1/tracing/{trace['trace_id']}", headers=AUTHORITY)
    assert again.status_code == 200 and again.json() == trace
    listed = (await hr.get("/v1/tracing", headers=AUTHORITY, params={"limit": 2})).json()
    assert [i["trace_id"] for i in listed["items"]] == [trace["trace_id"], answer["trace_id"]]
    assert [i["applied"] for i in listed["items"]] == [True, False]
    assert listed["items"][0]["contacts"] == 3 and listed["items"][0]["visits"] == 1
    assert listed["items"][0]["case"]["masked_name"] == "王*明"
    assert listed["items"][0]["role"] == "authority"
    rest = (
        await hr.get("/v1/tracing", headers=AUTHORITY, params={"cursor": listed["next_cursor"]})
    ).json()
    assert trace["trace_id"] not in [i["trace_id"] for i in rest["items"]]
    assert answer["trace_id"] not in [i["trace_id"] for i in rest["items"]]


async def test_a_given_reason_is_kept(hr, venues) -> None:
    case, _ = await person(hr, "王小明")
    green, subject = await person(hr, "李秀华")
    venues.answer = CoPresence.of(
        [Visit(venue_id=new_id(), venue_name=None, checked_at=T0)],
        [(subject, new_id(), rfc3339(T0), "李*华")],
        T0 - timedelta(days=27),
    )
    response = await hr.post(
        "/v1/tracing", headers=AUTHORITY, json=body(case, apply_color="red", reason="密接 2026-11")
    )
    assert response.status_code == 200, response.text
    status = await status_of(hr, green)
    assert (status["color"], status["color_reason"]) == ("red", "密接 2026-11")


async def test_unknown_traces_and_bad_cursors(hr, venues) -> None:
    for trace_id in (new_id(), "not-an-id", "0" * 200):
        response = await hr.get(f"/v1/tracing/{trace_id}", headers=AUTHORITY)
        assert response.status_code == 404, response.text
    bad = await hr.get("/v1/tracing", headers=AUTHORITY, params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"
    assert (
        await hr.get("/v1/tracing", headers=AUTHORITY, params={"limit": 501})
    ).status_code == 422


async def test_concurrent_traces_turn_a_contact_once(hr, venues, hr_app) -> None:
    case, _ = await person(hr, "王小明")
    green, subject = await person(hr, "李秀华")
    venues.answer = CoPresence.of(
        [Visit(venue_id=new_id(), venue_name="南宁东站", checked_at=T0)],
        [(subject, new_id(), rfc3339(T0), "李*华")],
        T0 - timedelta(days=27),
    )
    before = (await status_of(hr, green))["version"]
    answers = await asyncio.gather(
        *(
            hr.post("/v1/tracing", headers=AUTHORITY, json=body(case, apply_color="yellow"))
            for _ in range(8)
        )
    )
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    turned = [a.json()["contacts"][0] for a in answers if a.json()["changed"]]
    assert turned == [{**turned[0], "color_before": "green", "color_after": "yellow"}]
    assert {a.json()["contacts"][0]["color_after"] for a in answers} == {"yellow"}
    status = await status_of(hr, green)
    assert (status["color"], status["version"]) == ("yellow", before + 1)
    reasons = [f"时空伴随 {a.json()['trace_id']}" for a in answers]
    async with hr_app.state.db.sessionmaker() as session:
        history = (
            await session.scalars(select(CodeChange.color).where(CodeChange.reason.in_(reasons)))
        ).all()
    assert history == ["yellow"]  # one change, one history row


async def test_venue_admin_away_is_503_and_nothing_is_kept(hr, hr_app) -> None:
    case, subject = await person(hr, "王小明")
    sent: list[dict[str, Any]] = []

    def venue_admin(request: httpx.Request) -> httpx.Response:
        sent.append({"path": request.url.path, **orjson.loads(request.content)})
        return httpx.Response(503)

    async def unreachable(session: SessionDep, persons: PersonServiceDep) -> TracingService:
        client = httpx.AsyncClient(
            base_url="http://venue-admin", transport=httpx.MockTransport(venue_admin)
        )
        return TracingService(session, persons, VenueAdminClient(client), masker(hr_app, persons))

    kept = (await hr.get("/v1/tracing", headers=AUTHORITY, params={"limit": 500})).json()
    saved = hr_app.dependency_overrides.get(tracing_service)
    hr_app.dependency_overrides[tracing_service] = unreachable
    try:
        response = await hr.post("/v1/tracing", headers=AUTHORITY, json=body(case))
    finally:
        if saved is not None:
            hr_app.dependency_overrides[tracing_service] = saved
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "service_unavailable"
    # What was asked: the subject (never the ID number), the period, the window.
    assert sent == [
        {
            "path": "/internal/v1/co-presence",
            "subject_id": subject,
            "from": (T0 - timedelta(days=2)).isoformat(),
            "to": (T0 + timedelta(hours=1)).isoformat(),
            "window_minutes": 30,
        }
    ]
    after = (await hr.get("/v1/tracing", headers=AUTHORITY, params={"limit": 500})).json()
    assert after["items"] == kept["items"]


async def test_a_subject_venue_admin_sends_twice_is_one_contact_at_their_first_scan() -> None:
    """venue-admin sends every co-present scan in time order, in parts (a subject scanned
    twice near the case comes twice, in one part or in both): the client keeps each subject's
    first row, columns aligned."""
    a, b, c = new_id(), new_id(), new_id()
    station, market = new_id(), new_id()
    answer = {
        "visits": [{"venue_id": station, "venue_name": "南宁东站", "checked_at": rfc3339(T0)}],
        "contacts": [
            {
                "subject_ids": [a, b, a],
                "venue_ids": [station, station, market],
                "checked_at": [rfc3339(T0 + timedelta(minutes=m)) for m in (1, 2, 3)],
                "masked_names": ["李*华", None, "李*"],
            },
            {
                "subject_ids": [c, b],
                "venue_ids": [market, station],
                "checked_at": [rfc3339(T0 + timedelta(minutes=m)) for m in (4, 5)],
                "masked_names": ["王*", "刘*"],
            },
        ],
        "records_kept_since": rfc3339(T0 - timedelta(days=27)),
    }
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=answer))
    async with httpx.AsyncClient(base_url="http://venue-admin", transport=transport) as client:
        found = await VenueAdminClient(client).co_presence(new_id(), T0, T0, 30)
    assert list(
        zip(found.subject_ids, found.venue_ids, found.checked_at, found.masked_names, strict=True)
    ) == [
        (a, station, rfc3339(T0 + timedelta(minutes=1)), "李*华"),
        (b, station, rfc3339(T0 + timedelta(minutes=2)), None),
        (c, market, rfc3339(T0 + timedelta(minutes=4)), "王*"),
    ]


@pytest.mark.parametrize("count", [0, 1, 5, 6])
async def test_an_answer_written_in_chunks_is_one_json_and_its_kept_copy_the_same(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contacts are written and compressed a chunk at a time (two here): one JSON object,
    members in order, and the audit's copy decompresses to the same bytes."""
    monkeypatch.setattr(tracing_service_module, "_CHUNK", 2)
    contacts = [{"masked_name": f"李*{n}", "checked_at": rfc3339(T0)} for n in range(count)]
    head = {"trace_id": new_id(), "case": {"masked_name": "王*"}, "visits": []}
    tail = {"created_at": rfc3339(T0), "changed": 0}
    answer, kept = await tracing_service_module._written_and_kept(head, iter(contacts), tail)
    assert list(orjson.loads(answer).items()) == [
        *head.items(),
        ("contacts", contacts),
        *tail.items(),
    ]
    assert zlib.decompress(kept) == answer


def test_masked_id_numbers_are_those_of_the_sealed_numbers() -> None:
    """The masks made from the key stream in one go are mask_id_number of each number as
    Sealer.open gives it back; a value of another length is opened one by one."""
    key = os.urandom(32)
    sealer = Sealer(key, b"person")
    masker = IdNumberMasker(key, sealer)
    numbers = [new_id_number() for _ in range(500)] + ["45010319500308123X"]
    sealed = sealer.seal_many([n.encode() for n in numbers])
    assert masker.masked(sealed) == [mask_id_number(n) for n in numbers]
    odd = sealer.seal(b"4501031950030")
    assert masker.masked([*sealed[:2], odd]) == [
        mask_id_number(numbers[0]),
        mask_id_number(numbers[1]),
        "450103***0030",
    ]
    assert masker.masked([]) == []
    with pytest.raises(ValueError):
        masker.masked_slots(b"\x00" * 32, b"\x00" * 31)


async def test_contacts_looked_up_in_halves_are_those_looked_up_at_once(
    hr, venues, monkeypatch
) -> None:
    """PostgreSQL looks a long list up in two halves at once (two connections): each contact
    keeps their own masked ID number, colour and place, unknown subjects in either half too."""
    from health_records.tracing import repository

    case, _ = await person(hr, "王小明")
    people = [
        await person(hr, name, color)
        for name, color in [
            ("李秀华", "green"),
            ("张三", "yellow"),
            ("赵四", "red"),
            ("钱五", "green"),
            ("孙六", "green"),
        ]
    ]
    subjects = [people[3][1], new_id(), people[0][1], people[4][1], people[2][1], new_id()]
    subjects.insert(3, people[1][1])
    venue = new_id()
    venues.answer = CoPresence.of(
        [Visit(venue_id=venue, venue_name="南宁东站", checked_at=T0)],
        [(s, venue, rfc3339(T0 + timedelta(minutes=i)), None) for i, s in enumerate(subjects)],
        T0 - timedelta(days=27),
    )
    by_subject = {s: n for n, s in people}
    expected = [
        (mask_id_number(by_subject[s]), rfc3339(T0 + timedelta(minutes=i)))
        for i, s in enumerate(subjects)
        if s in by_subject
    ]
    answers = []
    for split_from in (10**9, 2):
        monkeypatch.setattr(repository, "SPLIT_FROM", split_from)
        traced = await hr.post("/v1/tracing", headers=AUTHORITY, json=body(case))
        assert traced.status_code == 200, traced.text
        answers.append(traced.json())
    for answer in answers:
        assert [(c["masked_id_number"], c["checked_at"]) for c in answer["contacts"]] == expected
        assert [c["color_before"] for c in answer["contacts"]] == [
            "green",
            "green",
            "yellow",
            "green",
            "red",
        ]
        assert answer["unknown_contacts"] == 2
    assert answers[0]["contacts"] == answers[1]["contacts"]
