"""Transactional outbox: events are rows written in the same transaction as the change they
describe, and a relay publishes them to JetStream in order, deleting what was acked.

Nothing is lost while the bus is down (the rows wait), and a row published twice (a crash
between ack and delete) is dropped by JetStream's duplicate window and by idempotent consumers.
"""

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import BigInteger, Integer, LargeBinary, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.aio import stop_task, wait_event
from hc_common.db import EVENTS_STAGED, Database, UTCDateTime
from hc_common.events.bus import EventBus
from hc_common.events.envelope import encode_envelope

log = logging.getLogger("hc.outbox")

OUTBOX_BACKLOG = Gauge(
    "outbox_backlog_events", "Events committed but not yet acked by JetStream, as of the last round"
)


class OutboxMixin:
    """Columns of a service's `outbox` table."""

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def mark_events_staged(session: AsyncSession) -> None:
    """Say that this transaction wrote outbox rows: once it commits, the database wakes the
    relay (`Database.on_events_committed`) instead of leaving them to its next tick."""
    session.info[EVENTS_STAGED] = True


def add_event(
    session: AsyncSession,
    model: type[OutboxMixin],
    subject: str,
    data: Mapping[str, Any],
    event_id: str | None = None,
) -> str:
    """Stage an event in the caller's transaction; it is published after the commit. Returns
    the event's id."""
    event_id, occurred_at, payload = encode_envelope(subject, data, event_id=event_id)
    session.add(
        model(event_id=event_id, subject=subject, payload=payload, created_at=occurred_at)  # type: ignore[call-arg]
    )
    mark_events_staged(session)
    return event_id


class OutboxRelay:
    """Publishes outbox rows in `seq` order; woken by `notify()` after a commit, or every
    `interval` seconds."""

    def __init__(
        self,
        db: Database,
        model: type[OutboxMixin],
        bus: EventBus,
        *,
        interval: float = 0.5,
        batch: int = 2000,
    ) -> None:
        self.db = db
        self.model = model
        self.bus = bus
        self.interval = interval
        self.batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed; will retry", extra={"error": repr(exc)})
                sent = 0
            if sent >= self.batch:
                continue
            await wait_event(self._wake, self.interval)
            self._wake.clear()

    async def pending(self) -> int:
        async with self.db.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(self.model)) or 0)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were acked and removed."""
        if not self.bus.connected:
            return 0
        model = self.model
        async with self.db.sessionmaker() as session:
            query = select(model).order_by(model.seq).limit(self.batch)
            if self.db.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.scalars(query)).all())
            if not rows:
                OUTBOX_BACKLOG.set(0)
                await session.rollback()
                return 0
            # Pipelined: the batch is sent in seq order, then all acks are awaited at once.
            await self.bus.publish_many([(row.subject, row.payload, row.event_id) for row in rows])
            # By event id, not seq: SQLite hands a deleted row's seq to the next insert, so
            # when another replica's relay has published and removed these rows meanwhile,
            # a seq of this list may already name a new, unpublished event.
            done = [row.event_id for row in rows]
            await session.execute(delete(model).where(model.event_id.in_(done)))
            await session.commit()
        # A short round emptied the table (as of its start); a full one may have left more.
        OUTBOX_BACKLOG.set(await self.pending() if len(done) >= self.batch else 0)
        return len(done)
