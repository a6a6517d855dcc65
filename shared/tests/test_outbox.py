"""The transactional outbox against a real database and a real NATS server that goes away."""

import asyncio
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import DeclarativeBase

from hc_common.db import Database
from hc_common.events.bus import EventBus
from hc_common.events.consumer import Consumer
from hc_common.events.envelope import Envelope, encode_envelope
from hc_common.events.outbox import (
    OutboxMixin,
    OutboxRecord,
    OutboxRelay,
    add_event,
    group_events,
    row_messages,
)
from hc_common.testing import NatsServer, eventually, test_database_url


class Base(DeclarativeBase):
    pass


class Outbox(Base, OutboxMixin):
    __tablename__ = "outbox_under_test"


async def test_events_survive_the_bus_going_away_and_arrive_once_in_order(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    db = Database(test_database_url("outbox", tmp_path))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    bus = EventBus(
        nats_server.url, "outbox-test", streams=("HEALTH",), auth=nats_server.auth("operator")
    )
    await bus.start(wait=10)
    relay = OutboxRelay(db, Outbox, bus, interval=0.05)
    relay.start()
    received: list[Envelope] = []

    async def handle(batch: list[Envelope]) -> None:
        received.extend(batch)

    consumer = Consumer(
        bus, stream="HEALTH", durable="outbox-test", subject="health_records.>", handler=handle
    )
    consumer.start()

    async def write(n: int) -> None:
        async with db.sessionmaker() as session:
            add_event(session, Outbox, "health_records.status.changed.v1", {"n": n})
            await session.commit()
        relay.notify()

    try:
        for n in range(3):
            await write(n)

        async def first_three() -> bool:
            return len(received) >= 3

        assert await eventually(first_three, 15), f"{len(received)} events arrived"

        nats_server.stop()
        for n in range(3, 8):
            await write(n)
        await asyncio.sleep(0.5)
        assert await relay.pending() == 5  # kept on disk while the bus is down

        nats_server.start()

        async def drained() -> bool:
            return await relay.pending() == 0 and len({e.id for e in received}) >= 8

        assert await eventually(drained, 30), f"{await relay.pending()} events left"
        numbers = [e.data["n"] for e in received]
        assert sorted(set(numbers)) == list(range(8))
        assert numbers == sorted(numbers)  # in order
        assert len({e.id for e in received}) == len(received)  # once each
    finally:
        await consumer.stop()
        await relay.stop()
        await bus.close()
        await db.dispose()


async def test_a_commit_that_staged_events_wakes_the_relay_and_no_other(tmp_path: Path) -> None:
    """Nobody has to tell the relay: the commit of a transaction that staged events does, and
    a rolled-back one, or one with no events, does not."""
    db = Database(test_database_url("outbox-wake", tmp_path))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    wakes: list[int] = []
    db.on_events_committed.append(lambda: wakes.append(1))
    try:
        async with db.sessionmaker() as session:
            add_event(session, Outbox, "health_records.status.changed.v1", {"n": 1})
            await session.rollback()
            await session.commit()
        assert wakes == []
        async with db.sessionmaker() as session:
            add_event(session, Outbox, "health_records.status.changed.v1", {"n": 2})
            await session.commit()
            assert wakes == [1]
            await session.commit()  # nothing new staged
        assert wakes == [1]
        async for session in db.session():  # the request's unit of work
            add_event(session, Outbox, "health_records.status.changed.v1", {"n": 3})
        assert wakes == [1, 1]
    finally:
        await db.dispose()


class _HeldBus:
    """A bus whose publish waits until the test lets it go (to interleave two relays)."""

    connected = True

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.published: list[str] = []

    async def publish_many(self, messages: list[tuple[str, bytes, str]]) -> None:
        self.entered.set()
        await self.release.wait()
        self.published += [msg_id for _, _, msg_id in messages]


async def test_two_relays_never_remove_an_event_neither_published(tmp_path: Path) -> None:
    """Two replicas' relays on one table: one publishes and removes rows while the other
    still holds them; a new event written meanwhile (on SQLite it may reuse a removed row's
    seq) is not removed by the slower relay's clean-up, and every event is published."""
    db = Database(test_database_url("outbox-two-relays", tmp_path))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    slow_bus, fast_bus = _HeldBus(), _HeldBus()
    fast_bus.release.set()
    slow = OutboxRelay(db, Outbox, slow_bus)  # type: ignore[arg-type]
    fast = OutboxRelay(db, Outbox, fast_bus)  # type: ignore[arg-type]
    try:
        async with db.sessionmaker() as session:
            first = [
                add_event(session, Outbox, "health_records.status.changed.v1", {"n": n})
                for n in range(3)
            ]
            await session.commit()
        held = asyncio.create_task(slow.relay_once())
        await slow_bus.entered.wait()
        # SQLite: the fast relay takes the same rows and removes them. PostgreSQL: the slow
        # relay holds them locked, and the fast one skips them.
        taken = await fast.relay_once()
        assert taken == (0 if db.engine.dialect.name == "postgresql" else 3)
        async with db.sessionmaker() as session:
            late = add_event(session, Outbox, "health_records.status.changed.v1", {"n": 3})
            await session.commit()
        slow_bus.release.set()
        await held
        assert set(first) <= set(slow_bus.published) | set(fast_bus.published)
        assert await relay_pending_ids(db) == [late]
    finally:
        await db.dispose()


async def relay_pending_ids(db: Database) -> list[str]:
    from sqlalchemy import select

    async with db.sessionmaker() as session:
        return list((await session.scalars(select(Outbox.event_id))).all())


# --- Grouped rows -----------------------------------------------------------------------------

STATUS = "health_records.status.changed.v1"
OTHER = "venue_admin.rule.changed.v1"


def _records(subject: str, numbers: range) -> list[OutboxRecord]:
    records: list[OutboxRecord] = []
    for n in numbers:
        event_id, occurred_at, payload = encode_envelope(subject, {"n": n, "note": "a\nb"})
        records.append((event_id, subject, payload, occurred_at))
    return records


async def _stage(db: Database, rows: list[OutboxRecord]) -> None:
    async with db.sessionmaker() as session:
        await session.execute(
            insert(Outbox),
            [{"event_id": e, "subject": s, "payload": p, "created_at": c} for e, s, p, c in rows],
        )
        await session.commit()


def test_runs_of_one_subject_become_grouped_rows_of_at_most_the_size() -> None:
    records = _records(STATUS, range(5)) + _records(OTHER, range(1)) + _records(STATUS, range(2))
    rows = group_events(records, size=3)
    # 3 + 2 of the first run, the lone event of another subject as it was, then 2.
    assert [row[1] for row in rows] == [STATUS, STATUS, OTHER, STATUS]
    assert rows[2] == records[5]  # a run of one stays a plain row
    assert [row[0] for row in rows] == [records[0][0], records[3][0], records[5][0], records[6][0]]
    messages = [
        m
        for event_id, subject, payload, _ in rows
        for m in row_messages(subject, payload, event_id)
    ]
    # Each event as its own row would have sent it: its envelope, its id, in order.
    assert messages == [(subject, payload, event_id) for event_id, subject, payload, _ in records]


class _RecordingBus:
    connected = True

    def __init__(self) -> None:
        self.rounds: list[list[tuple[str, bytes, str]]] = []

    async def publish_many(self, messages: list[tuple[str, bytes, str]]) -> None:
        self.rounds.append(messages)


async def test_a_round_reads_at_most_max_bytes_beyond_its_first_row(tmp_path: Path) -> None:
    """Large grouped rows: a round takes rows up to `max_bytes` (always one), says how many
    events it published, and pending() counts events, not rows."""
    db = Database(test_database_url("outbox-rounds", tmp_path))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    records = _records(STATUS, range(25))
    rows = group_events(records, size=10)  # 10, 10, 5
    bus = _RecordingBus()
    relay = OutboxRelay(db, Outbox, bus, max_bytes=len(rows[0][2]) + 1)  # type: ignore[arg-type]
    try:
        await _stage(db, rows)
        assert await relay.pending() == 25
        assert await relay.relay_once() == 10
        assert await relay.pending() == 15
        assert await relay.relay_once() == 10
        assert await relay.relay_once() == 5
        assert await relay.relay_once() == 0
        assert await relay.pending() == 0
        assert [len(r) for r in bus.rounds] == [10, 10, 5]
        sent = [m for r in bus.rounds for m in r]
        assert [msg_id for _, _, msg_id in sent] == [r[0] for r in records]
    finally:
        await db.dispose()


class _CrashAfterPublish:
    """A relay's bus that publishes, then fails before the rows are removed (as a relay that
    dies between the acks and its commit)."""

    connected = True

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def publish_many(self, messages: list[tuple[str, bytes, str]]) -> None:
        await self.bus.publish_many(messages)
        raise RuntimeError("relay died after the acks")


async def test_a_grouped_row_published_again_arrives_once_each_in_order(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Plain rows and grouped rows of status events: the consumer gets every event once, in
    the order written, under its own id, also when the relay published a group and died
    before removing it (JetStream drops the second publish by the events' ids)."""
    db = Database(test_database_url("outbox-groups", tmp_path))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    bus = EventBus(
        nats_server.url, "outbox-groups", streams=("HEALTH",), auth=nats_server.auth("operator")
    )
    await bus.start(wait=10)
    received: list[Envelope] = []

    async def handle(batch: list[Envelope]) -> None:
        received.extend(batch)

    consumer = Consumer(
        bus, stream="HEALTH", durable="outbox-groups", subject="health_records.>", handler=handle
    )
    records = _records(STATUS, range(12))
    rows = [records[0], *group_events(records[1:11], size=4), records[11]]
    relay = OutboxRelay(db, Outbox, bus)
    try:
        await _stage(db, rows)
        assert await relay.pending() == 12
        dying = OutboxRelay(db, Outbox, _CrashAfterPublish(bus))  # type: ignore[arg-type]
        try:
            await dying.relay_once()
        except RuntimeError:
            pass
        assert await relay.pending() == 12  # nothing removed: all of it goes again
        assert await relay.relay_once() == 12
        assert await relay.pending() == 0
        consumer.start()

        async def all_arrived() -> bool:
            return len(received) >= 12

        assert await eventually(all_arrived, 15), f"{len(received)} events arrived"
        await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile
        assert [e.id for e in received] == [r[0] for r in records]
        assert [e.data["n"] for e in received] == list(range(12))
        assert all(e.data["note"] == "a\nb" for e in received)
    finally:
        await consumer.stop()
        await bus.close()
        await db.dispose()
