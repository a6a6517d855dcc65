"""The scan over HTTP as the app answers it: the direct route (ahead of the middleware stack)
and the documented route a browser's request takes give the same answers and the same request
faults; the record is in the journal when the answer comes; the body check, the record ids and
the answer's times are what the slower ways made (no network: the app through ASGI)."""

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from hc_common.clock import rfc3339
from hc_common.hygiene import is_id
from hc_common.settings import DEV_CORS_ORIGINS
from verifier.config import Settings
from verifier.main import create_app
from verifier.scan.decision import Decision, HealthStatus
from verifier.scan.router import answer_json, parse_body, verify_answer
from verifier.scan.schemas import GateVerifyRequest, VerifyRequest
from verifier.scan.service import RecordIds, ScanResult
from verifier.view.state import CredentialInfo

from .conftest import Upstreams, Verifier, an_id, credential, device, member, status

VENUE = an_id("venue-http")
STAFF = an_id("user-staff")
GATE = an_id("gate-1")
BROWSER = DEV_CORS_ORIGINS[0]


@pytest.fixture
def verifier(upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]) -> Verifier:
    upstreams.add_venue(
        VENUE,
        members=[member(VENUE, STAFF, ["reverse_scan"])],
        devices=[device(VENUE, GATE)],
    )
    return make_verifier(upstreams)


@pytest.fixture
async def http(verifier: Verifier) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(cors_origins=[BROWSER]))
    app.state.scan_service = verifier.service
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://verifier") as client:
        yield client


def a_card(upstreams: Upstreams, name: str, color: str = "green") -> str:
    info = credential(an_id(f"cred-{name}"), an_id(f"subj-{name}"))
    upstreams.credentials[info["credential_id"]] = info
    upstreams.statuses[info["subject_id"]] = status(info["subject_id"], color)
    return upstreams.qr(info)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def comparable(answer: httpx.Response) -> tuple[int, Any]:
    """Status and body, without what differs from one scan to the next."""
    body = answer.json()
    for key in ("record_id", "checked_at"):
        body.pop(key, None)
    return answer.status_code, body


async def test_the_direct_route_and_a_browsers_request_answer_alike(
    http: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    staff = bearer(upstreams.user_token(STAFF))
    gate = bearer(upstreams.device_token(GATE, VENUE))
    cases: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        ("/v1/verify", staff, {"qr": a_card(upstreams, "green"), "venue_id": VENUE}),
        ("/v1/verify", staff, {"qr": a_card(upstreams, "red", "red"), "venue_id": VENUE}),
        ("/v1/verify", staff, {"qr": "GXHC1:forged", "venue_id": VENUE}),
        ("/v1/verify", gate, {"qr": a_card(upstreams, "gate")}),
        ("/v1/gate/verify", gate, {"qr": a_card(upstreams, "yellow", "yellow")}),
    ]
    for path, token, body in cases:
        for language in ("zh", "en"):
            headers = {**token, "Accept-Language": language}
            direct = await http.post(path, json=body, headers=headers)
            browser = await http.post(path, json=body, headers={**headers, "Origin": BROWSER})
            assert direct.status_code == 200, direct.text
            assert comparable(direct) == comparable(browser), (path, body)
            assert direct.headers["content-type"] == "application/json"
            assert browser.headers["access-control-allow-origin"] == BROWSER
            assert "access-control-allow-origin" not in direct.headers
    english = await http.post(path, json=body, headers={**token, "Accept-Language": "en"})
    assert english.json()["lines"][-1] == "No entry"


async def test_request_faults_are_the_same_problems_on_both_ways(
    http: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    staff = bearer(upstreams.user_token(STAFF))
    qr = a_card(upstreams, "faults")
    stranger = bearer(upstreams.user_token(an_id("user-stranger")))
    cases: list[tuple[str, dict[str, str], object, int, str]] = [
        ("/v1/verify", {}, {"qr": qr, "venue_id": VENUE}, 401, "unauthorized"),
        ("/v1/verify", bearer("not.a.token"), {"qr": qr, "venue_id": VENUE}, 401, "unauthorized"),
        ("/v1/gate/verify", staff, {"qr": qr}, 403, "forbidden"),
        ("/v1/verify", stranger, {"qr": qr, "venue_id": VENUE}, 403, "forbidden"),
        ("/v1/verify", staff, {"qr": qr, "venue_id": "../x"}, 404, "not_found"),
        ("/v1/verify", staff, {"qr": qr}, 422, "validation_error"),
        ("/v1/verify", staff, {"qr": "", "venue_id": VENUE}, 422, "validation_error"),
        ("/v1/verify", staff, {"qr": 5, "venue_id": VENUE}, 422, "validation_error"),
        ("/v1/verify", staff, b"{not json", 422, "validation_error"),
        ("/v1/verify", staff, b" " * (4 * 1024 * 1024 + 1), 413, "payload_too_large"),
    ]
    for path, headers, body, code, problem in cases:
        answers = []
        for extra in ({}, {"Origin": BROWSER}):
            if isinstance(body, bytes):
                answer = await http.post(path, content=body, headers={**headers, **extra})
            else:
                answer = await http.post(path, json=body, headers={**headers, **extra})
            assert answer.status_code == code, (path, body, extra, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == problem
            assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
            answers.append(answer.json())
        assert answers[0] == answers[1], (path, body)
        if code == 422:
            assert answers[0]["errors"], body


async def test_a_scan_counts_by_route_and_keeps_the_callers_request_id(
    http: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    staff = bearer(upstreams.user_token(STAFF))
    body = {"qr": a_card(upstreams, "counted"), "venue_id": VENUE}
    answer = await http.post("/v1/verify", json=body, headers={**staff, "X-Request-ID": "gate-7"})
    assert answer.headers["x-request-id"] == "gate-7"
    metrics = (await http.get("/metrics")).text
    assert 'http_requests_total{method="POST",route="/v1/verify",status="200"}' in metrics
    assert 'verifier_decisions_total{decision="pass",reason="none"}' in metrics
    assert "verifier_scan_duration_seconds_bucket" in metrics


async def test_the_record_is_in_the_journal_when_the_answer_comes(
    http: httpx.AsyncClient, upstreams: Upstreams, verifier: Verifier
) -> None:
    staff = bearer(upstreams.user_token(STAFF))
    body = {"qr": a_card(upstreams, "journal"), "venue_id": VENUE}
    record_id = (await http.post("/v1/verify", json=body, headers=staff)).json()["record_id"]
    journaled = b"".join(segment.read_bytes() for segment in verifier.spool.segments())
    (line,) = [line for line in journaled.splitlines() if line.startswith(record_id.encode())]
    journaled_record = json.loads(line.partition(b" ")[2])
    assert journaled_record["venue_id"] == VENUE and journaled_record["decision"] == "pass"


BODIES: list[bytes] = [
    b'{"qr": "GXHC1:a.b.c", "venue_id": "01kf7dyazkbpqr0dmdqg2z63vg"}',
    b'{"qr": "GXHC1:a.b.c"}',
    b'{"qr": "GXHC1:a.b.c", "venue_id": null, "other": [1, 2]}',
    b'{"qr": "x", "qr": "y", "venue_id": "v"}',
    b'{"qr": "\\u674e\\u534e", "venue_id": ""}',
    b'{"qr": "' + b"q" * 2048 + b'", "venue_id": "' + b"v" * 64 + b'"}',
    b'{"qr": "' + b"q" * 2049 + b'"}',
    b'{"qr": "a", "venue_id": "' + b"v" * 65 + b'"}',
    b'{"qr": ""}',
    b'{"qr": 5}',
    b'{"qr": "a", "venue_id": 5}',
    b'{"qr": ["a"]}',
    b'{"venue_id": "v"}',
    b'["qr"]',
    b'"qr"',
    b"null",
    b"",
    b"{not json",
    b'{"qr": "o\xff"}',
    b'{"qr": "\\ud800"}',
    b'\xef\xbb\xbf{"qr": "a"}',
    b'{"qr": "a", "venue_id": "v"} trailing',
    b'{"qr": "a", "n": 1e999}',
    b'{"qr": "a\\u0000b"}',
]


def by_the_model(
    model: type[VerifyRequest] | type[GateVerifyRequest], raw: bytes
) -> tuple[str, str | None] | list[Any]:
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        return [(error["type"], error["loc"]) for error in exc.errors()]
    return body.qr, getattr(body, "venue_id", None)


def by_parse_body(
    model: type[VerifyRequest] | type[GateVerifyRequest], raw: bytes
) -> tuple[str, str | None] | list[Any]:
    try:
        return parse_body(model, raw)
    except RequestValidationError as exc:
        return [(error["type"], error["loc"][1:]) for error in exc.errors()]


def test_the_body_check_takes_exactly_what_the_model_takes() -> None:
    for model in (VerifyRequest, GateVerifyRequest):
        for raw in BODIES:
            assert by_parse_body(model, raw) == by_the_model(model, raw), (model, raw)


def test_record_ids_are_of_our_format_in_order_and_of_their_time() -> None:
    make = RecordIds()
    before = time.time()
    ids = [make() for _ in range(5000)]
    assert all(is_id(record_id) for record_id in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # The first 10 characters are the milliseconds (a ULID's), the rest random.
    millis = 0
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    for character in ids[0][:10]:
        millis = millis * 32 + alphabet.index(character)
    assert before - 1 <= millis / 1000 <= time.time() + 1
    assert len({record_id[10:] for record_id in ids[:100]}) == 100


def test_the_answers_times_are_written_as_the_contract_writes_them() -> None:
    checked = datetime(2026, 11, 27, 8, 0, 5, 987654, tzinfo=UTC)
    sampled = datetime(2026, 11, 26, 20, 0, 0, 123, tzinfo=timezone(timedelta(hours=8)))
    card = CredentialInfo(
        "c1", "s1", 1, "active", "李*华", "450103********1234", date(1950, 3, 8), checked
    )
    health = HealthStatus("s1", "green", "negative", sampled, 2, checked.replace(tzinfo=None), 1)
    result = ScanResult(Decision("pass"), card, health, False, "r1", checked)
    body = orjson.loads(answer_json(verify_answer(result)))
    assert body["checked_at"] == rfc3339(checked) == "2026-11-27T08:00:05Z"
    assert body["credential"]["expires_at"] == rfc3339(checked)
    assert body["health"]["nat"]["sample_time"] == rfc3339(sampled) == "2026-11-26T12:00:00Z"
    assert body["health"]["vaccination"]["last_dose_at"] == "2026-11-27T08:00:05Z"
    assert body["holder"]["age"] == 76
