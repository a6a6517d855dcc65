"""The transactional outbox against a real database and a real NATS server that goes away."""

import asyncio
from pathlib import Path

from sqlalchemy.orm import DeclarativeBase

from hc_common.db import Database
from hc_common.events.bus import EventBus
from hc_common.events.consumer import Consumer
from hc_common.events.envelope import Envelope
from hc_common.events.outbox import OutboxMixin, OutboxRelay, add_event
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
