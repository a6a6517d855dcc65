"""The message bus is authenticated: on the local run's own NATS (authentication on, as
`make run` starts it) nobody but health-records can publish a status change, nobody but
venue-admin a member change. Tried as an attacker would: a red holder, a forged green far
ahead in version; the scan still answers as the authority set it."""

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import jwt
import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from hc_common.devstack import Stack
from hc_common.events.envelope import MEMBER_CHANGED, STATUS_CHANGED, Envelope
from hc_common.testing import make_phone, poll
from tests.conftest import Api, own_stack
from tests.e2e.test_verifier_scan import EVENTS, apply, venue, verify
from tests.journeys import AUTHORITY, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own() -> Iterator[tuple[Stack, Api]]:
    """Always the stack's own embedded NATS (never `TEST_NATS_URL`, the machine's
    server, which has no accounts)."""
    with own_stack("bus-auth") as running:
        yield running


def subject_of(qr: str) -> str:
    """The pseudonymous subject a card's token names (its payload is readable, not secret)."""
    payload = qr.split(":", 1)[1].split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def forged_green(subject_id: str) -> bytes:
    return Envelope(
        type=STATUS_CHANGED,
        data={
            "subject_id": subject_id,
            "masked_id_number": None,
            "color": "green",
            "color_reason": None,
            "nat": None,
            "vaccination": None,
            "version": 1000,
            "updated_at": "2026-11-29T00:00:00Z",
        },
    ).to_bytes()


async def publish_as(stack: Stack, user: str, subject: str, body: bytes) -> list[str]:
    """Publish one event through JetStream as `user`; the errors the server sent back (a
    refused publish is never acked: the client times out waiting)."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    assert stack.embedded_nats is not None
    nc = await nats.connect(
        stack.embedded_nats.url,
        error_cb=on_error,
        **stack.embedded_nats.auth(user).connect_options(),
    )
    try:
        js = nc.jetstream(timeout=2)
        try:
            await js.publish(subject, body)
        except NatsTimeoutError:
            errors.append("no ack")
        await nc.flush()
    finally:
        await nc.close()
    return errors


async def last_sequence(stack: Stack, stream: str) -> int:
    nc = await stack.nats_connect("operator")
    try:
        return int((await nc.jetstream().stream_info(stream)).state.last_seq)
    finally:
        await nc.close()


def test_only_health_records_can_change_a_status(own: tuple[Stack, Api]) -> None:
    stack, api = own
    venue_id, admin = venue(api)
    credential, id_number = apply(api)
    red = api.health_records.post(
        "/v1/codes", headers=AUTHORITY, json={"id_number": id_number, "color": "red", "reason": "x"}
    )
    assert red.status_code == 200, red.text
    assert poll(
        lambda: verify(api, admin, credential["qr"], venue_id).json()["reasons"] == ["color_red"],
        EVENTS,
    )
    before = asyncio.run(last_sequence(stack, "HEALTH"))
    forged = forged_green(subject_of(credential["qr"]))

    # No credentials: the server refuses the connection itself.
    assert stack.embedded_nats is not None
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        asyncio.run(
            nats.connect(stack.embedded_nats.url, allow_reconnect=False, max_reconnect_attempts=0)
        )

    # Another service's credentials (the verifier's, the issuer's): the publish is refused.
    for user in ("verifier", "issuer", "venue-admin"):
        errors = asyncio.run(publish_as(stack, user, STATUS_CHANGED, forged))
        assert "no ack" in errors, (user, errors)
        assert any("permissions violation" in e.lower() for e in errors), (user, errors)

    assert asyncio.run(last_sequence(stack, "HEALTH")) == before  # nothing reached the stream
    for _ in range(3):  # and the scan still says what the authority set
        body = verify(api, admin, credential["qr"], venue_id).json()
        assert body["decision"] == "deny" and body["reasons"] == ["color_red"], body

    # The authority's next change still applies (no forged version 1000 to outrank it).
    green = api.health_records.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": id_number, "color": "green", "reason": "x"},
    )
    assert green.status_code == 200, green.text
    assert poll(
        lambda: verify(api, admin, credential["qr"], venue_id).json()["decision"] == "pass", EVENTS
    )


def test_only_venue_admin_can_grant_reverse_scan(own: tuple[Stack, Api]) -> None:
    stack, api = own
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    stranger = sign_in(api.issuer, make_phone())
    token = stranger["Authorization"].removeprefix("Bearer ")
    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    grant: dict[str, Any] = {
        "venue_id": venue_id,
        "user_id": user_id,
        "role": "staff",
        "permissions": ["reverse_scan"],
        "removed": False,
        "version": 1000,
    }
    forged = Envelope(type=MEMBER_CHANGED, data=grant).to_bytes()
    for user in ("verifier", "health-records"):
        errors = asyncio.run(publish_as(stack, user, MEMBER_CHANGED, forged))
        assert "no ack" in errors, (user, errors)
    assert verify(api, stranger, credential["qr"], venue_id).status_code == 403
    assert verify(api, admin, credential["qr"], venue_id).status_code == 200  # the real staff


def test_a_service_publishes_its_own_events(own: tuple[Stack, Api]) -> None:
    """The control: the same client code, with the owner's credentials, is acked (so the
    refusals above are the permissions, not a broken client)."""
    stack, _ = own
    before = asyncio.run(last_sequence(stack, "HEALTH"))
    # A well-formed event of a type no one follows (the verifier ignores it).
    check = Envelope(type="health_records.bus_check.v1", data={}).to_bytes()
    errors = asyncio.run(publish_as(stack, "health-records", "health_records.bus_check.v1", check))
    assert errors == []
    assert asyncio.run(last_sequence(stack, "HEALTH")) == before + 1
