"""ViewSync: the snapshot a verifier starts from, then every followed event applied in order
by version, as a scan then sees it (who may scan, which credential is revoked, which colour).
JetStream is a fake that hands the test each subscription's callback."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from hc_common.errors import DomainError
from hc_common.events import envelope as subjects
from hc_common.events.envelope import Envelope
from hc_common.testing import eventually
from verifier.scan.service import Scanner
from verifier.view.handlers import parse_status

from .conftest import Upstreams, Verifier, an_id, credential, device, member, rule, status

VENUE = an_id("venue-1")
CRED1 = an_id("cred1")
SUBJ1 = an_id("subj1")
STAFF = Scanner("user", an_id("user-staff"), None)
GATE = Scanner("device", an_id("device-gate"), VENUE)


def message(stream: str, seq: int, subject: str, data: dict[str, Any]) -> Msg:
    """A JetStream message as a push consumer receives it (the reply subject carries the
    stream sequence)."""
    body = Envelope(type=subject, data=data).to_bytes()
    reply = f"$JS.ACK.{stream}.consumer.1.{seq}.{seq}.{time.time_ns()}.0"
    return Msg(None, subject=subject, reply=reply, data=body)


class Stream:
    """Feeds one stream's events to a ViewSync in sequence order."""

    def __init__(self, verifier: Verifier, name: str) -> None:
        self.verifier, self.name, self.seq = verifier, name, 0

    def send(self, subject: str, data: dict[str, Any]) -> None:
        self.seq += 1
        self.verifier.sync._handle(self.name, message(self.name, self.seq, subject, data))


async def may_scan(verifier: Verifier, scanner: Scanner, venue_id: str | None = VENUE) -> int:
    """200 if the scanner may scan at the venue, else the status the scan is refused with."""
    try:
        if scanner.kind == "device":
            await verifier.service._check_device(scanner)
        await verifier.service.authorize(scanner, venue_id)
    except DomainError as exc:
        return exc.status
    return 200


@pytest.fixture
async def verifier(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> Verifier:
    """Started from an empty snapshot of a system with one venue, then followed."""
    upstreams.snapshot_pages = [{"members": [], "devices": [], "rules": [rule(VENUE)]}]
    upstreams.add_venue(VENUE)
    made = make_verifier(upstreams)
    await made.sync.load_snapshots()
    return made


async def test_the_snapshot_is_read_page_by_page_from_every_owner(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    upstreams.revocation_pages = [[an_id("cred-r1"), an_id("cred-r2")], [an_id("cred-r3")]]
    upstreams.snapshot_pages = [
        {"members": [], "devices": [], "rules": [rule(an_id("venue-0"))]},
        {
            "members": [member(VENUE, STAFF.id, ["reverse_scan"])],
            "devices": [device(VENUE, GATE.id)],
            "rules": [rule(VENUE, ["green", "yellow"], version=2)],
        },
    ]
    upstreams.credentials[an_id("cred-r3")] = credential(
        an_id("cred-r3"), an_id("subj3")
    )  # not yet revoked there
    verifier = make_verifier(upstreams)
    await verifier.sync.load_snapshots()
    upstreams.requests.clear()

    assert await may_scan(verifier, STAFF) == 200
    assert await may_scan(verifier, GATE, None) == 200
    assert (await verifier.service.authorize(STAFF, VENUE))[1].allowed_colors == {
        "green",
        "yellow",
    }
    assert verifier.view.venues_complete
    # From the second page of either owner: answered without asking anyone.
    assert upstreams.requests == []
    _, reasons = await verifier.service.credential(
        upstreams.qr(upstreams.credentials[an_id("cred-r3")])
    )
    assert reasons == ["credential_revoked"]


async def test_a_reload_refreshes_the_statuses_held(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    verifier = make_verifier(upstreams)
    verifier.view.apply_status(parse_status(status(SUBJ1, "green", version=1)))
    upstreams.statuses[SUBJ1] = status(SUBJ1, "red", version=2)
    await verifier.sync.load_snapshots()
    held = verifier.view.statuses.get(SUBJ1)
    assert held is not None and held.status.color == "red"


async def test_venue_events_in_order_decide_who_may_scan(verifier: Verifier) -> None:
    venues = Stream(verifier, "VENUES")
    assert await may_scan(verifier, STAFF) == 403

    venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"], version=1))
    assert await may_scan(verifier, STAFF) == 200

    venues.send(subjects.DEVICE_CHANGED, device(VENUE, GATE.id, version=1))
    assert await may_scan(verifier, GATE, None) == 200

    venues.send(
        subjects.RULE_CHANGED, rule(VENUE, ["green", "red"], min_vaccine_doses=2, version=1)
    )
    venue_rule = (await verifier.service.authorize(STAFF, VENUE))[1]
    assert venue_rule.allowed_colors == {"green", "red"} and venue_rule.min_vaccine_doses == 2

    venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, [], removed=True, version=2))
    assert await may_scan(verifier, STAFF) == 403

    venues.send(subjects.DEVICE_CHANGED, device(VENUE, GATE.id, active=False, version=2))
    assert await may_scan(verifier, GATE, None) == 401

    venues.send(subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": True})
    assert await may_scan(verifier, STAFF) == 404


async def test_credential_and_status_events_reach_the_scan(verifier: Verifier) -> None:
    issuer, health = Stream(verifier, "ISSUER"), Stream(verifier, "HEALTH")
    verifier.sync.live["HEALTH"] = True  # statuses in memory are current
    verifier.upstreams.down.update({"issuer", "health-records"})  # nothing asked: all events
    issued = credential(CRED1, SUBJ1)
    qr = verifier.upstreams.qr(issued)

    issuer.send(subjects.CREDENTIAL_ISSUED, issued)
    health.send(subjects.STATUS_CHANGED, status(SUBJ1, "yellow", version=1))
    assert (await verifier.service.credential(qr))[1] == []
    found, stale = await verifier.service.status(SUBJ1)
    assert found is not None and found.color == "yellow" and not stale

    health.send(subjects.STATUS_CHANGED, status(SUBJ1, "green", version=2))
    assert (await verifier.service.status(SUBJ1))[0].color == "green"
    issuer.send(subjects.CREDENTIAL_REVOKED, credential(CRED1, SUBJ1, status="revoked"))
    assert (await verifier.service.credential(qr))[1] == ["credential_revoked"]


async def test_an_older_version_never_overwrites_a_newer_one(verifier: Verifier) -> None:
    venues, issuer = Stream(verifier, "VENUES"), Stream(verifier, "ISSUER")
    health = Stream(verifier, "HEALTH")
    verifier.sync.live["HEALTH"] = True

    venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"], version=5))
    venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, [], version=4))
    assert await may_scan(verifier, STAFF) == 200

    venues.send(subjects.RULE_CHANGED, rule(VENUE, ["green", "yellow"], version=2))
    venues.send(subjects.RULE_CHANGED, rule(VENUE, ["green"], version=1))
    assert (await verifier.service.authorize(STAFF, VENUE))[1].allowed_colors == {
        "green",
        "yellow",
    }

    health.send(subjects.STATUS_CHANGED, status(SUBJ1, "red", version=3))
    health.send(subjects.STATUS_CHANGED, status(SUBJ1, "green", version=2))
    assert (await verifier.service.status(SUBJ1))[0].color == "red"

    # A revocation keeps the credential's version and wins over the same version active.
    revoked = credential(CRED1, SUBJ1, status="revoked")
    issuer.send(subjects.CREDENTIAL_REVOKED, revoked)
    issuer.send(subjects.CREDENTIAL_ISSUED, credential(CRED1, SUBJ1))
    qr = verifier.upstreams.qr(revoked)
    assert (await verifier.service.credential(qr))[1] == ["credential_revoked"]


async def test_an_event_seen_already_is_not_applied_again(verifier: Verifier) -> None:
    """A consumer made again may deliver what was applied: the stream sequence says so."""
    venues = Stream(verifier, "VENUES")
    venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"]))
    created = message("VENUES", 2, subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": False})
    verifier.sync._handle("VENUES", created)
    deleted = message("VENUES", 3, subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": True})
    verifier.sync._handle("VENUES", deleted)
    verifier.sync._handle("VENUES", created)  # delivered again
    assert await may_scan(verifier, STAFF) == 404
    assert verifier.sync.last_seq["VENUES"] == 3


async def test_an_event_that_does_not_fit_its_schema_is_dropped_and_the_next_applies(
    verifier: Verifier,
) -> None:
    venues = Stream(verifier, "VENUES")
    broken = member(VENUE, STAFF.id, ["reverse_scan"])
    del broken["permissions"]
    venues.send(subjects.MEMBER_CHANGED, broken)
    assert await may_scan(verifier, STAFF) == 403
    venues.send("venue_admin.something.new.v1", {"anything": 1})  # not kept by the view
    venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"]))
    assert await may_scan(verifier, STAFF) == 200
    assert verifier.sync.last_seq["VENUES"] == 3


# --- start-up and following, against a fake JetStream --------------------------------------
@dataclass
class FakeSubscription:
    stream: str
    config: ConsumerConfig
    cb: Callable[[Msg], Awaitable[None]]
    lost: bool = False
    unsubscribed: bool = False

    async def consumer_info(self) -> object:
        if self.lost:
            raise NotFoundError()
        return object()

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


class FakeJetStream:
    def __init__(self, last_seq: dict[str, int]) -> None:
        self.last_seq = last_seq
        self.subscriptions: list[FakeSubscription] = []

    async def stream_info(self, name: str) -> Any:
        if name not in self.last_seq:
            raise NotFoundError()
        return SimpleNamespace(state=SimpleNamespace(last_seq=self.last_seq[name]))

    async def subscribe(
        self,
        subject: str,
        *,
        stream: str,
        cb: Callable[[Msg], Awaitable[None]],
        config: ConsumerConfig,
        manual_ack: bool,
    ) -> FakeSubscription:
        if stream not in self.last_seq:
            raise NotFoundError()
        subscription = FakeSubscription(stream, config, cb)
        self.subscriptions.append(subscription)
        return subscription

    def following(self, stream: str) -> FakeSubscription:
        return [s for s in self.subscriptions if s.stream == stream][-1]


async def started(verifier: Verifier, js: FakeJetStream) -> Verifier:
    verifier.bus.js = js
    verifier.bus._ready.set()
    verifier.sync.start()
    return verifier


async def test_start_follows_each_stream_from_before_its_snapshot_then_is_ready(
    upstreams: Upstreams,
    make_verifier: Callable[[Upstreams], Verifier],
    no_retry_waits: None,
) -> None:
    upstreams.snapshot_pages = [{"members": [], "devices": [], "rules": [rule(VENUE)]}]
    upstreams.failures["venue-admin"] = 2  # the first two loads fail half-way
    js = FakeJetStream({"ISSUER": 7, "VENUES": 3, "HEALTH": 0})
    verifier = await started(make_verifier(upstreams), js)
    try:
        assert await eventually(lambda: _is_set(verifier.sync.ready), timeout=5)
        assert upstreams.failures["venue-admin"] == 0
        starts = {s: js.following(s).config.opt_start_seq for s in ("ISSUER", "VENUES", "HEALTH")}
        assert starts == {"ISSUER": 8, "VENUES": 4, "HEALTH": 1}
        assert verifier.sync.health_current

        # An event published after the sequence was taken reaches the view.
        event = message(
            "VENUES", 4, subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"])
        )
        await js.following("VENUES").cb(event)
        assert await may_scan(verifier, STAFF) == 200
    finally:
        await verifier.sync.stop()


async def test_a_stream_not_made_yet_keeps_the_verifier_unready(
    upstreams: Upstreams,
    make_verifier: Callable[[Upstreams], Verifier],
    no_retry_waits: None,
) -> None:
    js = FakeJetStream({"ISSUER": 0, "VENUES": 0})  # health-records has not started yet
    verifier = await started(make_verifier(upstreams), js)
    try:
        await asyncio.sleep(0.2)
        assert not verifier.sync.ready.is_set()
    finally:
        await verifier.sync.stop()


async def test_a_lost_consumer_is_made_again_from_the_last_event_applied(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    js = FakeJetStream({"ISSUER": 0, "VENUES": 10, "HEALTH": 0})
    verifier = await started(make_verifier(upstreams), js)
    try:
        assert await eventually(lambda: _is_set(verifier.sync.ready), timeout=5)
        first = js.following("VENUES")
        await first.cb(
            message("VENUES", 11, subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": False})
        )
        first.lost = True  # NATS restarted without it
        assert await eventually(lambda: _async(js.following("VENUES") is not first), timeout=5)
        assert js.following("VENUES").config.opt_start_seq == 12
        assert first.unsubscribed
        assert await eventually(lambda: _async(verifier.sync.live["VENUES"]), timeout=5)
    finally:
        await verifier.sync.stop()


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def _async(value: bool) -> bool:
    return value
