"""Transactional outbox: events are rows written in the same transaction as the change they
describe, and a relay publishes them to JetStream in order, deleting what was acked.

Nothing is lost while the bus is down (the rows wait), and a row published twice (a crash
between ack and delete) is dropped by JetStream's duplicate window and by idempotent consumers.
"""

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import BigInteger, Integer, LargeBinary, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.aio import stop_task, wait_event
from hc_common.db import Database, UTCDateTime
from hc_common.events.bus import EventBus
from hc_common.events.envelope import Envelope

log = logging.getLogger("hc.outbox")

OUTBOX_PENDING = Gauge("outbox_pending_events", "Events written but not yet acked by JetStream")


class OutboxMixin:
    """Columns of a service's `outbox` table."""

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def add_event(
    session: AsyncSession,
    model: type[OutboxMixin],
    subject: str,
    data: dict[str, Any],
    event_id: str | None = None,
) -> Envelope:
    """Stage an event in the caller's transaction; it is published after the commit."""
    envelope = (
        Envelope(type=subject, data=data)
        if event_id is None
        else Envelope(id=event_id, type=subject, data=data)
    )
    session.add(
        model(
            event_id=envelope.id,
            subject=subject,  # type: ignore[call-arg]
            payload=envelope.to_bytes(),
            created_at=envelope.occurred_at,
        )
    )
    return envelope


async def add_events_bulk(
    session: AsyncSession,
    model: type[OutboxMixin],
    subject: str,
    datas: Sequence[dict[str, Any]],
    event_ids: Sequence[str] | None = None,
) -> int:
    """Stage many events of one subject in the caller's transaction with one INSERT: the same
    envelopes as add_event ({id, type, occurred_at, data}), built as plain dicts and serialised
    with orjson, for a batch of thousands of changes. Datetimes inside `datas` must be in UTC;
    they are written as the contract writes times (`2026-11-27T08:00:00Z`). Returns the count."""
    import orjson
    from sqlalchemy import insert, text

    from hc_common.clock import utcnow
    from hc_common.ids import new_id

    if not datas:
        return 0
    ids = list(event_ids) if event_ids is not None else [new_id() for _ in datas]
    now = utcnow()
    occurred_at = now.isoformat().replace("+00:00", "Z")  # as Envelope.to_bytes writes it
    option = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
    payloads = [
        orjson.dumps(
            {"id": event_id, "type": subject, "occurred_at": occurred_at, "data": data},
            option=option,
        )
        for event_id, data in zip(ids, datas, strict=True)
    ]
    table = model.__table__  # type: ignore[attr-defined]
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        # One statement over arrays: no per-row parameters; rows keep their order (seq).
        await conn.execute(
            text(
                f"INSERT INTO {table.name} (event_id, subject, payload, created_at) "
                "SELECT e, CAST(:subject AS text), p, CAST(:now AS timestamptz) "
                "FROM unnest(CAST(:ids AS text[]), CAST(:payloads AS bytea[])) "
                "WITH ORDINALITY AS u(e, p, n) ORDER BY n"
            ),
            {"subject": subject, "now": now, "ids": ids, "payloads": payloads},
        )
    else:
        await conn.execute(
            insert(table),
            [
                {"event_id": event_id, "subject": subject, "payload": payload, "created_at": now}
                for event_id, payload in zip(ids, payloads, strict=True)
            ],
        )
    return len(payloads)


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
            OUTBOX_PENDING.set(len(rows))
            if not rows:
                await session.rollback()
                return 0
            # Pipelined: the batch is sent in seq order, then all acks are awaited at once.
            await self.bus.publish_many([(row.subject, row.payload, row.event_id) for row in rows])
            done = [row.seq for row in rows]
            await session.execute(delete(model).where(model.seq.in_(done)))
            await session.commit()
            return len(done)
