"""ViewSync: the snapshot a verifier starts from, then every followed event applied in order
by version, as a scan then sees it (who may scan, which credential is revoked, which colour);
the status cache's policy (events update, never insert). JetStream is a fake that hands the
test each subscription's callback (test_view_follow.py follows a real NATS)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY

from hc_common.errors import DomainError
from hc_common.events import envelope as subjects
from hc_common.events.envelope import Envelope
from hc_common.testing import eventually
from verifier.scan.service import Scanner
from verifier.view.handlers import apply_event, parse_status
from verifier.view.state import ScanView

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

    async def send(self, subject: str, data: dict[str, Any]) -> None:
        self.seq += 1
        await self.verifier.sync._handle(self.name, message(self.name, self.seq, subject, data))


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

    await venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"], version=1))
    assert await may_scan(verifier, STAFF) == 200

    await venues.send(subjects.DEVICE_CHANGED, device(VENUE, GATE.id, version=1))
    assert await may_scan(verifier, GATE, None) == 200

    await venues.send(
        subjects.RULE_CHANGED, rule(VENUE, ["green", "red"], min_vaccine_doses=2, version=1)
    )
    venue_rule = (await verifier.service.authorize(STAFF, VENUE))[1]
    assert venue_rule.allowed_colors == {"green", "red"} and venue_rule.min_vaccine_doses == 2

    await venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, [], removed=True, version=2))
    assert await may_scan(verifier, STAFF) == 403

    await venues.send(subjects.DEVICE_CHANGED, device(VENUE, GATE.id, active=False, version=2))
    assert await may_scan(verifier, GATE, None) == 401

    await venues.send(subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": True})
    assert await may_scan(verifier, STAFF) == 404


async def cache(verifier: Verifier, subject_id: str, color: str, version: int) -> None:
    """The subject's status fetched by a scan's miss (health-records answers it), so cached."""
    verifier.upstreams.statuses[subject_id] = status(subject_id, color, version=version)
    found, _ = await verifier.service.status(subject_id)
    assert found is not None and found.version == version
    assert verifier.view.statuses.peek(subject_id) is not None


async def test_credential_and_status_events_reach_the_scan(verifier: Verifier) -> None:
    issuer, health = Stream(verifier, "ISSUER"), Stream(verifier, "HEALTH")
    verifier.sync.live["HEALTH"] = True  # statuses in memory are current
    await cache(verifier, SUBJ1, "green", version=1)  # scanned once
    verifier.upstreams.down.update({"issuer", "health-records"})  # nothing asked: all events
    issued = credential(CRED1, SUBJ1)
    qr = verifier.upstreams.qr(issued)

    await issuer.send(subjects.CREDENTIAL_ISSUED, issued)
    await health.send(subjects.STATUS_CHANGED, status(SUBJ1, "yellow", version=2))
    assert (await verifier.service.credential(qr))[1] == []
    found, stale = await verifier.service.status(SUBJ1)
    assert found is not None and found.color == "yellow" and not stale

    await health.send(subjects.STATUS_CHANGED, status(SUBJ1, "green", version=3))
    assert (await verifier.service.status(SUBJ1))[0].color == "green"
    await issuer.send(subjects.CREDENTIAL_REVOKED, credential(CRED1, SUBJ1, status="revoked"))
    assert (await verifier.service.credential(qr))[1] == ["credential_revoked"]


async def test_an_older_version_never_overwrites_a_newer_one(verifier: Verifier) -> None:
    venues, issuer = Stream(verifier, "VENUES"), Stream(verifier, "ISSUER")
    health = Stream(verifier, "HEALTH")
    verifier.sync.live["HEALTH"] = True

    await venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"], version=5))
    await venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, [], version=4))
    assert await may_scan(verifier, STAFF) == 200

    await venues.send(subjects.RULE_CHANGED, rule(VENUE, ["green", "yellow"], version=2))
    await venues.send(subjects.RULE_CHANGED, rule(VENUE, ["green"], version=1))
    assert (await verifier.service.authorize(STAFF, VENUE))[1].allowed_colors == {
        "green",
        "yellow",
    }

    await cache(verifier, SUBJ1, "green", version=1)
    await health.send(subjects.STATUS_CHANGED, status(SUBJ1, "red", version=3))
    await health.send(subjects.STATUS_CHANGED, status(SUBJ1, "green", version=2))
    assert (await verifier.service.status(SUBJ1))[0].color == "red"

    # A revocation keeps the credential's version and wins over the same version active.
    revoked = credential(CRED1, SUBJ1, status="revoked")
    await issuer.send(subjects.CREDENTIAL_REVOKED, revoked)
    await issuer.send(subjects.CREDENTIAL_ISSUED, credential(CRED1, SUBJ1))
    qr = verifier.upstreams.qr(revoked)
    assert (await verifier.service.credential(qr))[1] == ["credential_revoked"]


async def test_a_new_venues_admin_may_scan_before_their_own_event_arrives(
    verifier: Verifier,
) -> None:
    """venue-admin publishes a new venue's creation, then its main admin's membership. A scan
    by that admin between the two is asked of venue-admin (found in CI: it was told 403, the
    venue counting as known with no member in it)."""
    new_venue = an_id("venue-new")
    verifier.upstreams.add_venue(new_venue, [member(new_venue, STAFF.id, ["reverse_scan"])])
    venues = Stream(verifier, "VENUES")
    await venues.send(subjects.VENUE_CHANGED, {"venue_id": new_venue, "deleted": False})
    assert await may_scan(verifier, STAFF, new_venue) == 200
    assert "reverse_scan" in verifier.view.members[(new_venue, STAFF.id)].permissions


async def test_an_event_seen_already_is_not_applied_again(verifier: Verifier) -> None:
    """A consumer made again may deliver what was applied: the stream sequence says so."""
    venues = Stream(verifier, "VENUES")
    await venues.send(subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"]))
    created = message("VENUES", 2, subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": False})
    await verifier.sync._handle("VENUES", created)
    deleted = message("VENUES", 3, subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": True})
    await verifier.sync._handle("VENUES", deleted)
    await verifier.sync._handle("VENUES", created)  # delivered again
    assert await may_scan(verifier, STAFF) == 404
    assert verifier.sync.last_seq["VENUES"] == 3


async def test_an_event_past_a_missing_one_is_not_applied(verifier: Verifier) -> None:
    """Sequence 3 after 1: 2 was dropped on the way (a slow consumer). 3 waits: the stream is
    followed again from 2 (test_view_follow.py shows the new consumer)."""
    gaps = metric("verifier_stream_gaps_total", "VENUES")
    venues = Stream(verifier, "VENUES")
    await venues.send(subjects.VENUE_CHANGED, {"venue_id": VENUE, "deleted": False})
    later = message("VENUES", 3, subjects.MEMBER_CHANGED, member(VENUE, STAFF.id, ["reverse_scan"]))
    await verifier.sync._handle("VENUES", later)
    assert verifier.sync.last_seq["VENUES"] == 1
    assert await may_scan(verifier, STAFF) == 403
    assert metric("verifier_stream_gaps_total", "VENUES") == gaps + 1


async def test_an_event_that_does_not_fit_its_schema_is_tried_again_never_skipped(
    verifier: Verifier,
) -> None:
    """A payload that does not validate is not dropped: it is tried again with backoff, each
    failure counted, and the stream's next event waits behind it (a callback at a time)."""
    verifier.sync.retry_initial = verifier.sync.retry_max = 0.01
    failures = metric("verifier_event_apply_failures_total", "VENUES")
    venues = Stream(verifier, "VENUES")
    await venues.send("venue_admin.something.new.v1", {"anything": 1})  # not kept by the view
    broken = member(VENUE, STAFF.id, ["reverse_scan"])
    del broken["permissions"]
    stuck = asyncio.create_task(
        verifier.sync._handle("VENUES", message("VENUES", 2, subjects.MEMBER_CHANGED, broken))
    )
    try:
        assert await eventually(
            lambda: _async(metric("verifier_event_apply_failures_total", "VENUES") >= failures + 3),
            timeout=5,
        )
        assert not stuck.done()
        assert verifier.sync.last_seq["VENUES"] == 1  # the position stays before it
        assert await may_scan(verifier, STAFF) == 403
    finally:
        stuck.cancel()  # its consumer retired (a reload supersedes it, or the process stops)
    assert verifier.sync.last_seq["VENUES"] == 1


def metric(name: str, stream: str) -> float:
    return REGISTRY.get_sample_value(name, {"stream": stream}) or 0.0


# --- start-up and following, against a fake JetStream --------------------------------------
@dataclass
class FakeSubscription:
    stream: str
    config: ConsumerConfig
    cb: Callable[[Msg], Awaitable[None]]
    lost: bool = False
    unsubscribed: bool = False
    pending_msgs: int = 0

    async def consumer_info(self) -> Any:
        if self.lost:
            raise NotFoundError()
        return SimpleNamespace(delivered=SimpleNamespace(stream_seq=0))

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


class FakeJetStream:
    """Streams by their last sequence (and first, 1 unless set): what `stream_info` says."""

    def __init__(self, last_seq: dict[str, int]) -> None:
        self.last_seq = last_seq
        self.first_seq: dict[str, int] = {}
        self.subscriptions: list[FakeSubscription] = []

    async def stream_info(self, name: str) -> Any:
        if name not in self.last_seq:
            raise NotFoundError()
        state = SimpleNamespace(last_seq=self.last_seq[name], first_seq=self.first_seq.get(name, 1))
        return SimpleNamespace(state=state, created=None)

    async def subscribe(
        self,
        subject: str,
        *,
        stream: str,
        cb: Callable[[Msg], Awaitable[None]],
        config: ConsumerConfig,
        manual_ack: bool,
        pending_msgs_limit: int,
        pending_bytes_limit: int,
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
        js.last_seq["VENUES"] = 11
        first.lost = True  # NATS restarted without it
        assert await eventually(lambda: _async(js.following("VENUES") is not first), timeout=5)
        assert js.following("VENUES").config.opt_start_seq == 12
        assert first.unsubscribed
        assert await eventually(lambda: _async(verifier.sync.live["VENUES"]), timeout=5)
    finally:
        await verifier.sync.stop()


async def test_events_gone_from_the_stream_reload_its_part_while_the_old_view_answers(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    """The consumer is lost and the stream no longer holds the event after the position
    (its limits removed it): venue-admin's snapshot is read again and installed whole; until
    then scans read the old view, and the verifier stays ready."""
    reloads = metric("verifier_view_reloads_total", "VENUES")
    upstreams.add_venue(VENUE, [member(VENUE, STAFF.id, ["reverse_scan"])])
    js = FakeJetStream({"ISSUER": 0, "VENUES": 10, "HEALTH": 0})
    verifier = make_verifier(upstreams)
    verifier.sync.check_interval = 0.05
    await started(verifier, js)
    try:
        assert await eventually(lambda: _is_set(verifier.sync.ready), timeout=5)
        first = js.following("VENUES")
        assert await may_scan(verifier, STAFF) == 200
        # Meanwhile: the staff member removed (the event is gone), another one added.
        other = Scanner("user", an_id("user-other"), None)
        upstreams.add_venue(VENUE, [member(VENUE, other.id, ["reverse_scan"])])
        js.first_seq["VENUES"], js.last_seq["VENUES"] = 15, 20
        upstreams.failures["venue-admin"] = 3  # the snapshot cannot be read for a while
        # What a scan would read while the snapshot is being read (and failing).
        seen: list[tuple[bool, bool, bool]] = []

        def observe(service: str, request: httpx.Request) -> None:
            if request.url.path == "/internal/v1/scan-snapshot":
                staff = verifier.view.members.get((VENUE, STAFF.id))
                seen.append(
                    (staff is not None, verifier.sync.ready.is_set(), verifier.sync.live["VENUES"])
                )

        upstreams.before_answer = observe
        first.lost = True

        assert await eventually(lambda: _async(js.following("VENUES") is not first), 5)
        assert js.following("VENUES").config.opt_start_seq == 21
        assert await may_scan(verifier, STAFF) == 403
        assert await may_scan(verifier, other) == 200
        # Four reads of the snapshot (three failed): the old view and ready all along.
        assert seen == [(True, True, False)] * 4
        assert verifier.sync.last_seq["VENUES"] == 20
        assert metric("verifier_view_reloads_total", "VENUES") == reloads + 1
        assert await eventually(lambda: _async(verifier.sync.live["VENUES"]), 5)
        assert verifier.sync.ready.is_set()
    finally:
        await verifier.sync.stop()


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def _async(value: bool) -> bool:
    return value


# --- venue-admin's snapshot, every page --------------------------------------------------
async def test_every_page_of_the_venue_snapshot_is_read_at_the_page_size_set(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    """23 venues at 5 a page: 5 pages, each asked for with `limit` = the page size; a member
    of a venue on any page may scan without venue-admin, a non-member may not."""
    staff = {}
    for i in range(23):
        venue_id = an_id(f"paged-venue-{i}")
        staff[venue_id] = Scanner("user", an_id(f"paged-staff-{i}"), None)
        upstreams.add_venue(venue_id, [member(venue_id, staff[venue_id].id, ["reverse_scan"])])
    made = make_verifier(upstreams)
    made.sync.snapshot_page_size = 5
    await made.sync.load_snapshots()

    asked = [r for r in upstreams.requests if r.endswith("/scan-snapshot")]
    assert len(asked) == 5
    upstreams.down.add("venue-admin")
    ordered = sorted(staff)
    for venue_id in (ordered[0], ordered[11], ordered[-1]):  # first, middle and last page
        assert await may_scan(made, staff[venue_id], venue_id) == 200
        assert await may_scan(made, STAFF, venue_id) == 403
    assert made.view.venues == set(staff)


async def test_the_page_size_is_sent_as_limit(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    limits: list[str | None] = []
    upstreams.add_venue(VENUE)
    upstreams.before_answer = lambda service, request: (
        limits.append(request.url.params.get("limit"))
        if request.url.path.endswith("/scan-snapshot")
        else None
    )
    made = make_verifier(upstreams)
    made.sync.snapshot_page_size = 7
    await made.sync.load_snapshots()
    assert limits == ["7"]


# --- the status cache: events update, never insert ---------------------------------------
async def test_a_status_event_for_a_subject_not_cached_does_not_insert_it(
    verifier: Verifier,
) -> None:
    health = Stream(verifier, "HEALTH")
    verifier.sync.live["HEALTH"] = True
    await health.send(subjects.STATUS_CHANGED, status(SUBJ1, "yellow", version=2))
    assert verifier.view.statuses.peek(SUBJ1) is None
    assert len(verifier.view.statuses) == 0
    # A scan's miss is fetched from health-records, as before.
    verifier.upstreams.statuses[SUBJ1] = status(SUBJ1, "yellow", version=2)
    verifier.upstreams.requests.clear()
    found, _ = await verifier.service.status(SUBJ1)
    assert found is not None and found.color == "yellow"
    assert verifier.upstreams.requests == [f"health-records /internal/v1/subjects/{SUBJ1}/status"]


async def test_a_status_event_updates_a_cached_subject_in_place(verifier: Verifier) -> None:
    health = Stream(verifier, "HEALTH")
    verifier.sync.live["HEALTH"] = True
    subj2 = an_id("subj2")
    await cache(verifier, SUBJ1, "green", version=1)
    await cache(verifier, subj2, "green", version=1)  # the most recently used
    await health.send(subjects.STATUS_CHANGED, status(SUBJ1, "red", version=2))
    held = verifier.view.statuses.peek(SUBJ1)
    assert held is not None and held.status.color == "red" and held.status.version == 2
    # An update is not a use: the LRU order stays.
    assert list(verifier.view.statuses.data) == [SUBJ1, subj2]
    await health.send(subjects.STATUS_CHANGED, status(SUBJ1, "green", version=1))  # older
    assert (await verifier.service.status(SUBJ1))[0].color == "red"


async def test_a_mass_testing_day_does_not_push_out_the_people_being_scanned(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    made = make_verifier(upstreams)
    made.view = made.service.view = made.sync.view = made.service.state.view = ScanView(
        status_capacity=3
    )
    made.sync.live["HEALTH"] = True
    health = Stream(made, "HEALTH")
    scanned = [an_id(f"scanned-{i}") for i in range(3)]
    for subject_id in scanned:
        await cache(made, subject_id, "green", version=1)
    for i in range(50):  # everyone else tested today
        await health.send(subjects.STATUS_CHANGED, status(an_id(f"tested-{i}"), version=5))
    await health.send(subjects.STATUS_CHANGED, status(scanned[0], "red", version=2))
    assert set(made.view.statuses.data) == set(scanned)
    upstreams.requests.clear()
    assert (await made.service.status(scanned[0]))[0].color == "red"
    assert upstreams.requests == []  # from memory


async def test_a_fetch_racing_a_newer_event_leaves_the_newer_status(verifier: Verifier) -> None:
    """health-records answers version 3; version 4's event arrives while that answer is on
    its way, before the subject is cached: the scan and the cache end with version 4."""
    verifier.sync.live["HEALTH"] = True
    verifier.upstreams.statuses[SUBJ1] = status(SUBJ1, "green", version=3)

    def event_in_flight(service: str, request: httpx.Request) -> None:
        if service == "health-records" and request.url.path.endswith("/status"):
            envelope = Envelope(type=subjects.STATUS_CHANGED, data=status(SUBJ1, "red", version=4))
            apply_event(verifier.view, envelope)  # what the stream's callback does

    verifier.upstreams.before_answer = event_in_flight
    found, _ = await verifier.service.status(SUBJ1)
    assert found is not None and found.version == 4 and found.color == "red"
    held = verifier.view.statuses.peek(SUBJ1)
    assert held is not None and held.status.version == 4
    verifier.upstreams.before_answer = None
    # A fetch that answers a newer version than the event wins as well.
    subj2 = an_id("subj2")
    verifier.view.update_status(parse_status(status(subj2, "red", version=4)))
    verifier.upstreams.statuses[subj2] = status(subj2, "green", version=5)
    assert (await verifier.service.status(subj2))[0].version == 5


def test_a_fetched_status_is_not_cached_while_recent_events_were_dropped() -> None:
    """More status events of uncached subjects within the window than the map holds: a
    fetched answer cannot be checked against them, so it is not cached until the window has
    passed (the scan that fetched it still uses it)."""
    view = ScanView(recent_status_capacity=2, recent_status_window=10.0)
    for i in range(3):
        view.update_status(parse_status(status(an_id(f"tested-{i}"), version=2)), now=100.0)
    assert len(view.recent_statuses) == 2
    fetched = parse_status(status(an_id("tested-0"), version=1))  # its event was dropped
    assert not view.apply_status(fetched, now=105.0)
    assert view.statuses.peek(an_id("tested-0")) is None
    assert view.apply_status(fetched, now=111.0)  # the window has passed: any fetch is newer
    # One still remembered is used.
    assert view.apply_status(parse_status(status(an_id("tested-2"), version=1)), now=105.0)
    held = view.statuses.peek(an_id("tested-2"))
    assert held is not None and held.status.version == 2


def test_remembered_status_events_age_out() -> None:
    view = ScanView(recent_status_window=10.0)
    view.update_status(parse_status(status(an_id("old"), version=2)), now=100.0)
    view.update_status(parse_status(status(an_id("new"), version=2)), now=111.0)
    assert list(view.recent_statuses) == [an_id("new")]
    assert view.recent_overflow_at == float("-inf")  # aged out, not pushed out
