"""The view following real JetStream streams (a nats-server of each test's own): an event
that fails to apply is tried again and holds its stream's position until it applies, the
events after it then applied in order; messages the client dropped (a slow consumer) are read
again from the position by a new consumer; events gone from the stream make the view load
its part again from the owner's snapshot; a NATS restart loses nothing. The owners' HTTP
reads are the in-memory fake of conftest.py (the view's NATS side is what is tested)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from prometheus_client import REGISTRY

from hc_common.events import envelope as subjects
from hc_common.events.bus import EventBus
from hc_common.events.envelope import Envelope
from hc_common.events.streams import SPECS
from hc_common.testing import NatsServer, eventually
from verifier.view import handlers
from verifier.view.state import ScanView
from verifier.view.sync import FOLLOWED, ViewSync

from .conftest import Upstreams, an_id, member

VENUE = an_id("follow-venue")


def user(i: int) -> str:
    return an_id(f"follow-user-{i}")


def metric(name: str, stream: str = "VENUES") -> float:
    return REGISTRY.get_sample_value(name, {"stream": stream}) or 0.0


@dataclass
class Following:
    """A ViewSync started on a real bus, the fake owners, and an operator's connection that
    makes the streams and publishes the owners' events."""

    sync: ViewSync
    view: ScanView
    upstreams: Upstreams
    operator: Client
    applied: list[int] = field(default_factory=list)  # `seq` data of events applied, in order
    failing: set[str] = field(default_factory=set)  # users whose member event raises

    async def publish(self, subject: str, data: dict[str, Any], msg_id: str) -> int:
        """Published once: JetStream drops a repeat of `msg_id` (a publish tried again after a
        time-out) and answers the first one's sequence."""
        ack = await self.operator.jetstream().publish(
            subject, Envelope(type=subject, data=data).to_bytes(), headers={"Nats-Msg-Id": msg_id}
        )
        return int(ack.seq)

    async def member(self, i: int, *, version: int = 1, removed: bool = False) -> int:
        """User i's member event; its role names i (what `applied` records)."""
        data = member(VENUE, user(i), ["reverse_scan"], version=version, removed=removed)
        data["role"] = f"staff-{i}"
        return await self.publish(subjects.MEMBER_CHANGED, data, f"member-{i}-{version}")

    def may_scan(self, i: int) -> bool:
        held = self.view.members.get((VENUE, user(i)))
        return held is not None and not held.removed

    async def position_is(self, seq: int) -> bool:
        return self.sync.last_seq.get("VENUES") == seq

    async def consumer_start(self) -> int:
        sub = self.sync.followers["VENUES"].sub
        assert sub is not None
        return int((await sub.consumer_info()).config.opt_start_seq or 0)


@pytest.fixture
async def make_following(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[Following]]]:
    made: list[tuple[ViewSync, EventBus, Client]] = []

    async def make(venues_max_msgs: int = -1, **options: Any) -> Following:
        operator = await nats_server.connect("operator")
        js = operator.jetstream()
        for name in FOLLOWED:
            config: StreamConfig = SPECS[name].config(max_bytes=64 * 1024 * 1024)
            if name == "VENUES":
                config.max_msgs = venues_max_msgs
            await js.add_stream(config)
        upstreams = Upstreams()
        upstreams.add_venue(VENUE)
        # As the verifier: only what its NATS user may do (hc_common.events.accounts).
        bus = EventBus(nats_server.url, "verifier-follow-test", auth=nats_server.auth("verifier"))
        await bus.start(wait=10)
        view = ScanView()
        settings: dict[str, Any] = {"retry_initial": 0.02, "retry_max": 0.1, "check_interval": 0.1}
        sync = ViewSync(
            view,
            bus,
            issuer=upstreams.client("issuer"),
            venue_admin=upstreams.client("venue-admin"),
            health_records=upstreams.client("health-records"),
            **{**settings, **options},
        )
        following = Following(sync, view, upstreams, operator)
        apply = handlers.apply_event

        def apply_event(view: ScanView, envelope: Envelope) -> None:
            # A member event of a user in `failing` raises, as a handler with a fault would.
            is_member = envelope.type == subjects.MEMBER_CHANGED
            if is_member and envelope.data["user_id"] in following.failing:
                raise RuntimeError("the handler failed")
            apply(view, envelope)
            if is_member:
                following.applied.append(int(envelope.data["role"].split("-")[1]))

        monkeypatch.setattr(handlers, "apply_event", apply_event)
        made.append((sync, bus, operator))
        sync.start()
        assert await eventually(lambda: _true(sync.ready.is_set()), 20)
        return following

    yield make
    for sync, bus, operator in made:
        await sync.stop()
        await bus.close()
        await operator.close()


async def _true(value: bool) -> bool:
    return value


async def test_an_event_that_fails_holds_the_position_until_it_applies(
    make_following: Callable[..., Awaitable[Following]],
) -> None:
    following = await make_following()
    sync = following.sync
    failures = metric("verifier_event_apply_failures_total")
    following.failing.add(user(2))

    first = await following.member(1)
    for i in (2, 3, 4):
        await following.member(i)
    await following.member(1, version=2, removed=True)

    assert await eventually(
        lambda: _true(metric("verifier_event_apply_failures_total") >= failures + 3), 10
    )
    # Tried again, and the stream waits behind it: nothing after it is applied.
    assert sync.last_seq["VENUES"] == first
    assert metric("verifier_stream_position") == first
    assert following.applied == [1]
    assert not following.may_scan(3) and following.may_scan(1)
    assert not sync.live["VENUES"]
    assert sync.live["ISSUER"]  # other streams are not held up

    following.failing.clear()  # the fault goes away
    assert await eventually(lambda: following.position_is(first + 4), 10)
    assert following.applied == [1, 2, 3, 4, 1]  # in stream order
    assert all(following.may_scan(i) for i in (2, 3, 4)) and not following.may_scan(1)
    assert await eventually(lambda: _true(sync.live["VENUES"]), 5)


async def test_messages_the_client_dropped_are_read_again_from_the_position(
    make_following: Callable[..., Awaitable[Following]],
) -> None:
    """The client buffers 2 messages; while the first event fails, the rest of 10 overflow
    and are dropped (a slow consumer). Nothing comes after the last one to show a sequence
    missing: the check sees the consumer past the position with nothing left, and a new
    consumer reads again from the position."""
    following = await make_following(pending_msgs_limit=2)
    sync = following.sync
    gaps = metric("verifier_stream_gaps_total")
    following.failing.add(user(1))
    seqs = [await following.member(i) for i in range(1, 11)]

    async def all_delivered() -> bool:
        sub = sync.followers["VENUES"].sub
        assert sub is not None
        info = await sub.consumer_info()
        return info.delivered is not None and info.delivered.stream_seq == seqs[-1]

    assert await eventually(all_delivered, 10)
    sync.pending_msgs_limit = 1000  # the next consumer's client buffer holds the rest
    following.failing.clear()

    assert await eventually(lambda: following.position_is(seqs[-1]), 15)
    assert following.applied == list(range(1, 11))  # each once, in order
    assert metric("verifier_stream_gaps_total") == gaps + 1
    # The new consumer started right after the last event applied before the gap (the two
    # the client had buffered).
    assert await following.consumer_start() == seqs[3]
    assert all(following.may_scan(i) for i in range(1, 11))


async def test_a_sequence_missing_before_a_message_is_read_again_at_once(
    make_following: Callable[..., Awaitable[Following]],
) -> None:
    """As above, but a later event shows the gap (checks are far apart: the message itself
    makes the consumer be made again)."""
    following = await make_following(pending_msgs_limit=2, check_interval=60)
    sync = following.sync
    gaps = metric("verifier_stream_gaps_total")
    following.failing.add(user(1))
    seqs = [await following.member(i) for i in range(1, 8)]

    async def all_delivered() -> bool:
        sub = sync.followers["VENUES"].sub
        assert sub is not None
        info = await sub.consumer_info()
        return info.delivered is not None and info.delivered.stream_seq == seqs[-1]

    assert await eventually(all_delivered, 10)
    sync.pending_msgs_limit = 1000  # the next consumer's client buffer holds the rest
    following.failing.clear()
    assert await eventually(lambda: following.position_is(seqs[2]), 10)  # 1, then 2 buffered
    seqs.append(await following.member(8))

    assert await eventually(lambda: following.position_is(seqs[-1]), 10)
    assert following.applied == list(range(1, 9))
    assert metric("verifier_stream_gaps_total") == gaps + 1
    assert await following.consumer_start() == seqs[3]


async def test_events_gone_from_the_stream_load_the_snapshot_again(
    make_following: Callable[..., Awaitable[Following]],
) -> None:
    """The stream keeps 5 messages. While the first event fails, 10 are published: the client
    drops what overflows its buffer and the stream drops the oldest. When the gap shows, the
    stream no longer holds the position's next event: venue-admin's snapshot is read again,
    and the view follows from the stream's end. Ready all along."""
    following = await make_following(venues_max_msgs=5, pending_msgs_limit=2, check_interval=60)
    sync = following.sync
    reloads = metric("verifier_view_reloads_total")
    following.failing.add(user(1))
    seqs = [await following.member(i) for i in range(1, 11)]

    async def all_delivered() -> bool:
        sub = sync.followers["VENUES"].sub
        assert sub is not None
        info = await sub.consumer_info()
        return info.delivered is not None and info.delivered.stream_seq == seqs[-1]

    assert await eventually(all_delivered, 10)
    sync.pending_msgs_limit = 1000  # the next consumer's client buffer holds the rest
    # What venue-admin holds now: all ten, and one whose event is gone with the rest.
    following.upstreams.add_venue(
        VENUE, [member(VENUE, user(i), ["reverse_scan"]) for i in (*range(1, 11), 99)]
    )
    following.failing.clear()
    assert await eventually(lambda: following.position_is(seqs[2]), 10)
    assert not following.may_scan(99)
    seqs.append(await following.member(11))  # shows the gap

    assert await eventually(lambda: following.position_is(seqs[-1]), 10)
    assert metric("verifier_view_reloads_total") == reloads + 1
    assert all(following.may_scan(i) for i in (*range(1, 11), 99))
    assert await following.consumer_start() == seqs[-1] + 1
    assert sync.ready.is_set()
    # Followed from there.
    seqs.append(await following.member(12))
    assert await eventually(lambda: following.position_is(seqs[-1]), 10)
    assert following.may_scan(12)
    assert await eventually(lambda: _true(sync.live["VENUES"]), 5)


async def test_a_nats_restart_loses_no_event_and_reloads_nothing(
    nats_server: NatsServer, make_following: Callable[..., Awaitable[Following]]
) -> None:
    following = await make_following()
    sync = following.sync
    reloads = metric("verifier_view_reloads_total")
    first = await following.member(1)
    assert await eventually(lambda: following.position_is(first), 10)

    nats_server.stop()
    nats_server.start()  # same port, same store
    seqs = [await _publish_when_up(following, i) for i in (2, 3)]
    assert seqs == [first + 1, first + 2]
    assert await eventually(lambda: following.position_is(seqs[-1]), 15)
    assert following.applied == [1, 2, 3]
    assert metric("verifier_view_reloads_total") == reloads
    assert await eventually(lambda: _true(sync.live["VENUES"]), 10)


async def _publish_when_up(following: Following, i: int) -> int:
    """Publish once the server answers again (JetStream takes a moment after a restart)."""
    seq: list[int] = []

    async def published() -> bool:
        try:
            seq.append(await following.member(i))
        except (nats.errors.Error, httpx.HTTPError, TimeoutError):
            return False
        return True

    assert await eventually(published, 15, interval=0.2)
    return seq[0]
