"""The scan from the credential on: expiry and revocation of a credential, the 10-minute bound
on a stale status, and the access record each decision leaves in the journal."""

import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import orjson
import pytest

from hc_common.clock import utcnow
from hc_common.events import envelope as subjects
from hc_common.events.schemas import AccessRecordCreated, parse_payload
from verifier.clients import NotKnown, Unreachable, get_json, internal_path
from verifier.scan.decision import HealthStatus
from verifier.scan.service import Scanner
from verifier.view import handlers

from .conftest import Upstreams, Verifier, an_id, credential, member, status

VENUE = an_id("venue-1")
CRED1 = an_id("cred1")
CRED2 = an_id("cred2")
SUBJ1 = an_id("subj1")
SUBJ2 = an_id("subj2")


def journal(verifier: Verifier) -> list[AccessRecordCreated]:
    """The access records in the journal, read back as venue-admin reads them."""
    records: list[AccessRecordCreated] = []
    for segment in verifier.spool.segments():
        for line in segment.read_bytes().splitlines():
            record_id, _, raw = line.partition(b" ")
            record: AccessRecordCreated = parse_payload(
                subjects.ACCESS_RECORD_CREATED, orjson.loads(raw)
            )
            assert record["record_id"] == record_id.decode()
            records.append(record)
    return records


@pytest.fixture
def verifier(upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]) -> Verifier:
    upstreams.add_venue(VENUE, members=[member(VENUE, an_id("user-staff"), ["reverse_scan"])])
    return make_verifier(upstreams)


async def test_an_expired_credential_is_credential_expired(verifier: Verifier) -> None:
    info = credential(CRED1, SUBJ1, expires_at=utcnow() - timedelta(days=1))
    verifier.view.apply_credential(handlers.parse_credential(info))
    found, reasons = await verifier.service.credential(verifier.upstreams.qr(info))
    assert reasons == ["credential_expired"]
    assert found is not None and found.credential_id == CRED1


async def test_revoked_and_expired_lists_both_in_the_contracts_order(verifier: Verifier) -> None:
    info = credential(CRED1, SUBJ1, status="revoked", expires_at=utcnow() - timedelta(days=1))
    verifier.view.apply_credential(handlers.parse_credential(info))
    _, reasons = await verifier.service.credential(verifier.upstreams.qr(info))
    assert reasons == ["credential_revoked", "credential_expired"]


async def test_a_live_credential_has_no_reasons_and_one_not_in_memory_is_asked_for(
    verifier: Verifier,
) -> None:
    info = credential(CRED1, SUBJ1)
    verifier.upstreams.credentials[CRED1] = info
    assert (await verifier.service.credential(verifier.upstreams.qr(info)))[1] == []
    assert verifier.view.credentials.get(CRED1) is not None  # kept for the next scan
    # Not in memory and the issuer unreachable: no decision on a credential we cannot see.
    other = credential(CRED2, SUBJ2)
    verifier.upstreams.down.add("issuer")
    assert await verifier.service.credential(verifier.upstreams.qr(other)) == (
        None,
        ["status_unavailable"],
    )


async def test_a_credential_the_issuer_does_not_know_is_invalid(verifier: Verifier) -> None:
    info = credential(an_id("cred-unknown"), SUBJ1)
    assert await verifier.service.credential(verifier.upstreams.qr(info)) == (
        None,
        ["credential_invalid"],
    )


@pytest.mark.parametrize(("age_seconds", "used"), [(60, True), (599, True), (601, False)])
async def test_health_records_down_a_status_up_to_10_minutes_old_is_used_marked_stale(
    verifier: Verifier, age_seconds: float, used: bool
) -> None:
    verifier.upstreams.down.add("health-records")
    verifier.sync.health_records_up = False
    verifier.sync.health_confirmed_at = float("-inf")  # never (0.0 is boot time)
    known = HealthStatus(SUBJ1, "green", None, None, 0, None, 3)
    verifier.view.apply_status(known, now=time.monotonic() - age_seconds)
    found = await verifier.service.status(SUBJ1)
    # Older: no status at all (-> status_unavailable, manual_check), never a pass on it.
    assert found == ((known, True) if used else (None, False))


async def test_a_status_in_memory_is_not_used_while_its_stream_is_not_followed(
    verifier: Verifier,
) -> None:
    """Not current (the HEALTH stream not followed): health-records is asked, and its answer
    replaces what memory held."""
    verifier.view.apply_status(HealthStatus(SUBJ1, "green", None, None, 0, None, 3))
    verifier.upstreams.statuses[SUBJ1] = status(SUBJ1, "red", version=4)
    found, stale = await verifier.service.status(SUBJ1)
    assert found is not None and found.color == "red" and stale is False
    verifier.sync.live["HEALTH"] = True
    verifier.upstreams.statuses[SUBJ1] = status(SUBJ1, "yellow", version=5)
    found, _ = await verifier.service.status(SUBJ1)
    assert found is not None and found.color == "red"  # current: from memory


async def test_an_unknown_subject_with_health_records_down_has_no_status(
    verifier: Verifier,
) -> None:
    verifier.upstreams.down.add("health-records")
    assert await verifier.service.status("nobody") == (None, False)


async def test_every_decision_leaves_one_access_record_in_the_journal(verifier: Verifier) -> None:
    upstreams, service = verifier.upstreams, verifier.service
    live = credential(CRED1, SUBJ1)
    revoked = credential(CRED2, SUBJ2, status="revoked")
    upstreams.credentials.update({CRED1: live, CRED2: revoked})
    upstreams.statuses[SUBJ1] = status(SUBJ1, "yellow")
    staff = Scanner("user", an_id("user-staff"), None)

    denied = await service.scan(staff, upstreams.qr(live), VENUE)
    assert denied.decision.decision == "deny" and denied.decision.reasons == ["color_yellow"]
    gone = await service.scan(staff, upstreams.qr(revoked), VENUE)
    assert gone.decision.reasons == ["credential_revoked"] and gone.credential is None
    upstreams.statuses[SUBJ1] = status(SUBJ1, "green", version=2)
    passed = await service.scan(staff, upstreams.qr(live), VENUE)
    assert passed.decision.decision == "pass"

    records = journal(verifier)
    assert [r["record_id"] for r in records] == [
        denied.record_id,
        gone.record_id,
        passed.record_id,
    ]
    first, second, third = records
    assert first["venue_id"] == VENUE and first["checked_at"] == denied.checked_at
    assert (first["decision"], first["reasons"]) == ("deny", ["color_yellow"])
    assert (first["masked_name"], first["color"], first["credential_id"]) == (
        "李*华",
        "yellow",
        CRED1,
    )
    assert first["scanner"] == {"kind": "user", "id": an_id("user-staff")}
    # A revoked credential's holder is not shown, nor recorded.
    assert (second["masked_name"], second["color"], second["credential_id"]) == (None, None, None)
    assert (third["decision"], third["color"]) == ("pass", "green")


async def test_ids_from_a_qr_or_an_upstream_that_are_not_ours_reach_no_url(
    verifier: Verifier,
) -> None:
    upstreams = verifier.upstreams
    # A credential signed by the issuer whose id is not one of ours: invalid, not asked for.
    odd = credential("../revocations?after=", SUBJ1)
    assert await verifier.service.credential(upstreams.qr(odd)) == (None, ["credential_invalid"])
    # A subject that is not an id is not asked of health-records: no status, no stale one.
    assert await verifier.service.status("../subjects\t1") == (None, False)
    assert [r for r in upstreams.requests if "/internal/" in r] == []


async def test_a_url_httpx_refuses_is_unreachable_not_an_error() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
        base_url="http://venue-admin",
    ) as client:
        for path in ("/internal/v1/venues/a\tb/scan-context", "/internal/v1/venues/\x7f"):
            with pytest.raises(Unreachable):
                await get_json(client, path)
    with pytest.raises(NotKnown):
        internal_path("/internal/v1/venues/{}/scan-context", "../scan-snapshot")
    assert (
        internal_path("/internal/v1/credentials/{}", CRED1) == f"/internal/v1/credentials/{CRED1}"
    )
