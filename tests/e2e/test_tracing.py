"""Contact tracing (时空伴随) through the real processes: a positive case and three people
scanned at the same venue within the window (one green, one already yellow, one red), one
scanned there hours before; a preview changes nothing, an applied trace turns only the green
contact yellow and the verifier denies them within 2 seconds; the audit list shows both
requests; no ID number of theirs reaches a log line, a URL or an event."""

import asyncio
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from hc_common.devstack import Stack
from hc_common.events.envelope import ACCESS_RECORD_CREATED, STATUS_CHANGED, encode_envelope
from hc_common.ids import new_id
from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api
from tests.journeys import AUTHORITY, access_record_ids, apply_for, open_venue, sign_in

pytestmark = pytest.mark.e2e

SERVICE = {"Authorization": "Bearer dev-service-key"}
NAMES = {
    "case": "王建国",
    "green": "李秀华",
    "yellow": "张桂英",
    "red": "赵德明",
    "outside": "刘玉兰",
}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def masked(id_number: str) -> str:
    return id_number[:6] + "********" + id_number[-4:]


def holder(api: Api, role: str, serial: int) -> tuple[str, str]:
    """A credential holder aged over 60: (ID number, the card's QR text)."""
    family = sign_in(api.issuer, make_phone())
    id_number = make_id_number(date(1950 + serial, 3, 8), serial=serial)
    applied = apply_for(api.issuer, family, id_number, name=NAMES[role])
    assert applied.status_code == 201, applied.text
    return id_number, str(applied.json()["qr"])


def set_color(api: Api, id_number: str, color: str) -> None:
    response = api.health_records.post(
        "/v1/codes", headers=AUTHORITY, json={"id_number": id_number, "color": color, "reason": "x"}
    )
    assert response.status_code == 200, response.text


def subject_of(api: Api, id_number: str) -> str:
    """The person's subject id, as the services know them (the ID number in a body)."""
    response = api.health_records.post(
        "/internal/v1/subjects", headers=SERVICE, json={"id_number": id_number}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["subject_id"])


async def deliver_late_scan(stack: Stack, venue_id: str, subject_id: str, at: datetime) -> None:
    """An access record of a scan at `at`, delivered now (as a verifier's journal does after an
    outage), published as the verifier."""
    record = {
        "record_id": new_id(),
        "venue_id": venue_id,
        "checked_at": at,
        "decision": "pass",
        "reasons": [],
        "masked_name": "刘*兰",
        "color": "green",
        "credential_id": new_id(),
        "subject_id": subject_id,
        "scanner": {"kind": "user", "id": new_id()},
    }
    event_id, _, payload = encode_envelope(ACCESS_RECORD_CREATED, record)
    nc = await stack.nats_connect("verifier")
    try:
        await nc.jetstream().publish(
            ACCESS_RECORD_CREATED, payload, headers={"Nats-Msg-Id": event_id}
        )
    finally:
        await nc.close()


class BusTap:
    """Every message published on the stack's bus while it is open (a core subscription to
    every subject, as the operator, in a thread of its own): the events as they went by, those
    of the ACCESS work queue included, which are gone from the stream once stored."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.messages: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self.loop, self.done = asyncio.get_running_loop(), asyncio.Event()
        nc = await self.stack.nats_connect()

        async def keep(message: Any) -> None:
            self.messages.append((message.subject, message.data))

        try:
            await nc.subscribe(">", cb=keep)
            await nc.flush()
            self.ready.set()
            await self.done.wait()
            await nc.flush()
        finally:
            await nc.close()

    def __enter__(self) -> "BusTap":
        self.thread.start()
        assert self.ready.wait(10), "no connection to the bus"
        return self

    def __exit__(self, *_: object) -> None:
        assert self.loop is not None and self.done is not None
        self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(10)


def test_a_trace_previews_then_turns_only_green_contacts_yellow(stack: Stack, api: Api) -> None:
    with BusTap(stack) as tap:
        people, trace = trace_a_case(stack, api)
    id_numbers = [id_number for id_number, _ in people.values()]

    # No ID number of theirs in a log line (the requests' URLs included) or an event.
    logs = {p.name: p.read_text(errors="replace") for p in (stack.run_dir / "logs").glob("*.log")}
    assert {"health-records.log", "venue-admin.log", "verifier.log"} <= set(logs)
    assert trace["trace_id"] in logs["health-records.log"]  # the trace is logged, by its id
    for name, text in logs.items():
        for id_number in id_numbers:
            assert id_number not in text, f"an ID number in {name}"
    # No URL takes one: the tracing routes, public and internal, take it in the body only.
    routes = [
        (api.health_records, "/v1/tracing"),
        (api.health_records, "/v1/tracing/{trace_id}"),
        (api.venue_admin, "/internal/v1/co-presence"),
    ]
    for client, path in routes:
        for operation in client.get("/openapi.json").json()["paths"][path].values():
            names = [p["name"] for p in operation.get("parameters", [])]
            assert not any("id_number" in n for n in names), (path, names)
    subjects = {subject for subject, _ in tap.messages}
    assert {ACCESS_RECORD_CREATED, STATUS_CHANGED} <= subjects, subjects
    for subject, data in tap.messages:
        for id_number in id_numbers:
            assert id_number.encode() not in data, f"an ID number in a message on {subject}"


def trace_a_case(stack: Stack, api: Api) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """The journey: the people, their scans, the preview, the trace applied and checked; the
    people (ID number and QR by role) and the applied trace's answer."""
    admin = sign_in(api.issuer, make_phone())
    venue_id = open_venue(api.venue_admin, admin, name="南宁东站")
    people = {role: holder(api, role, serial) for serial, role in enumerate(NAMES)}
    set_color(api, people["yellow"][0], "yellow")
    set_color(api, people["red"][0], "red")

    def verify(role: str) -> dict[str, Any]:
        response = api.verifier.post(
            "/v1/verify", headers=admin, json={"qr": people[role][1], "venue_id": venue_id}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    # The case, then the three others, at the venue within minutes.
    for role in ("case", "green", "yellow", "red"):
        verify(role)
    # The fifth was there three hours before: outside a 30-minute window.
    asyncio.run(
        deliver_late_scan(
            stack,
            venue_id,
            subject_of(api, people["outside"][0]),
            datetime.now(UTC) - timedelta(hours=3),
        )
    )
    stored = poll(lambda: len(access_record_ids(api.venue_admin, venue_id, admin)) == 5, 10)
    assert stored, access_record_ids(api.venue_admin, venue_id, admin)

    # The case tests positive.
    now = datetime.now(UTC)
    request = {
        "id_number": people["case"][0],
        "from": iso(now - timedelta(days=1)),
        "to": iso(now + timedelta(minutes=1)),
        "window_minutes": 30,
    }
    preview = api.health_records.post("/v1/tracing", headers=AUTHORITY, json=request)
    assert preview.status_code == 200, preview.text
    answer = preview.json()
    assert answer["case"] == {"masked_name": "王*国", "masked_id_number": masked(people["case"][0])}
    assert [(v["venue_id"], v["venue_name"]) for v in answer["visits"]] == [(venue_id, "南宁东站")]
    contacts = [
        (
            c["masked_name"],
            c["masked_id_number"],
            c["venue_name"],
            c["color_before"],
            c["color_after"],
        )
        for c in answer["contacts"]
    ]
    assert contacts == [
        ("李*华", masked(people["green"][0]), "南宁东站", "green", "green"),
        ("张*英", masked(people["yellow"][0]), "南宁东站", "yellow", "yellow"),
        ("赵*明", masked(people["red"][0]), "南宁东站", "red", "red"),
    ]
    # A preview changes nothing: the green contact still passes.
    assert verify("green")["decision"] == "pass"

    applied = api.health_records.post(
        "/v1/tracing", headers=AUTHORITY, json={**request, "apply_color": "yellow"}
    )
    assert applied.status_code == 200, applied.text
    trace = applied.json()
    assert [(c["masked_name"], c["color_before"], c["color_after"]) for c in trace["contacts"]] == [
        ("李*华", "green", "yellow"),
        ("张*英", "yellow", "yellow"),
        ("赵*明", "red", "red"),
    ]
    # Within 2 seconds every verifier has it.
    denied = poll(
        lambda: (lambda b: b if b["reasons"] == ["color_yellow"] else None)(verify("green")), 2
    )
    assert denied and denied["decision"] == "deny", denied
    assert verify("red")["reasons"] == ["color_red"]  # left as it was
    assert verify("yellow")["reasons"] == ["color_yellow"]

    # The same answer again, and the audit list with both requests, newest first.
    again = api.health_records.get(f"/v1/tracing/{trace['trace_id']}", headers=AUTHORITY)
    assert again.status_code == 200 and again.json() == trace
    listed = api.health_records.get("/v1/tracing", headers=AUTHORITY, params={"limit": 500})
    assert listed.status_code == 200, listed.text
    mine = {i["trace_id"]: i for i in listed.json()["items"]}
    order = [i["trace_id"] for i in listed.json()["items"]]
    assert order.index(trace["trace_id"]) < order.index(answer["trace_id"])
    assert (mine[answer["trace_id"]]["applied"], mine[trace["trace_id"]]["applied"]) == (
        False,
        True,
    )
    for item in (mine[answer["trace_id"]], mine[trace["trace_id"]]):
        assert (item["visits"], item["contacts"]) == (1, 3)
        assert item["case"]["masked_id_number"] == masked(people["case"][0])

    return people, trace
