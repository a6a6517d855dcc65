"""Fault tests with real processes on a stack of this module's own (processes get killed)."""

import re
from collections.abc import Iterator

import httpx
import pytest

from hc_common.devstack import Stack
from hc_common.testing import poll
from tests.conftest import Api, own_stack
from tests.e2e.test_verifier_scan import EVENTS, apply, venue, verify
from tests.journeys import access_record_ids

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own() -> Iterator[tuple[Stack, Api]]:
    with own_stack("verifier-faults") as running:
        yield running


def test_health_records_down_known_is_stale_unknown_is_manual_check(own) -> None:
    stack, api = own
    venue_id, admin = venue(api)
    known, _ = apply(api)
    unknown, _ = apply(api)  # issued, but its status never asked for
    first = verify(api, admin, known["qr"], venue_id).json()
    assert first["decision"] == "pass" and first["stale"] is False
    stack.stop_process("health-records")
    try:
        body = poll(
            lambda: (b := verify(api, admin, known["qr"], venue_id).json())["stale"] and b, EVENTS
        )
        assert body and body["decision"] == "pass" and body["health"]["color"] == "green"
        metrics = api.verifier.get("/metrics").text
        assert re.search(r"^verifier_stale_answers_total [1-9]", metrics, re.M), "counted"
        answer = verify(api, admin, unknown["qr"], venue_id)
        assert answer.status_code == 200
        assert answer.json()["decision"] == "manual_check"
        assert answer.json()["reasons"] == ["status_unavailable"]
        assert answer.json()["health"] is None
    finally:
        stack.start_service("health-records")
        stack.wait_ready(60, ["health-records"])
    assert poll(
        lambda: verify(api, admin, unknown["qr"], venue_id).json()["decision"] == "pass", EVENTS
    )


def test_nats_killed_during_scans_every_record_delivered_once(own) -> None:
    stack, api = own
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    record_ids = []
    for i in range(40):
        if i == 10:
            stack.stop_process("nats")
        if i == 30:
            stack.nats_url = None
            stack.start_nats()
        answer = verify(api, admin, credential["qr"], venue_id)
        assert answer.status_code == 200, answer.text
        record_ids.append(answer.json()["record_id"])
    wanted = set(record_ids)
    assert len(wanted) == 40
    # ACCESS is a work queue: a record leaves it once venue-admin has stored it, so the
    # store is where "none lost, none doubled" is read.

    def stored() -> list[str] | None:
        records = access_record_ids(api.venue_admin, venue_id, admin)
        return records if wanted <= set(records) else None

    records = poll(stored, timeout=30)
    assert records is not None, "every access record is stored at venue-admin"
    assert sorted(records) == sorted(wanted)  # stored once each, nothing else at this venue


def test_verifier_restarted_has_full_state_before_ready(own) -> None:
    stack, api = own
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    revoked, _ = apply(api)
    api.issuer.delete(
        f"/v1/family/credentials/{revoked['credential_id']}", headers=revoked["_family"]
    )
    stack.stop_process("verifier")
    stack.start_service("verifier")
    stack.wait_ready(60, ["verifier"])
    # Ready means loaded: venue-admin can go away and the scanner is still known.
    stack.stop_process("venue-admin")
    try:
        answer = verify(api, admin, credential["qr"], venue_id)
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "pass"
        assert verify(api, admin, revoked["qr"], venue_id).json()["reasons"] == [
            "credential_revoked"
        ]
        stranger = verify(api, revoked["_family"], credential["qr"], venue_id)
        assert stranger.status_code == 403
    finally:
        stack.start_service("venue-admin")
        stack.wait_ready(60, ["venue-admin"])
    assert httpx.get(stack.url("verifier") + "/readyz").status_code == 200
