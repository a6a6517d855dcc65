"""Transactional outbox: events are rows written in the same transaction as the change they
describe, and a relay publishes them to JetStream in order, deleting what was acked.

Nothing is lost while the bus is down (the rows wait), and a row published twice (a crash
between ack and delete) is dropped by JetStream's duplicate window and by idempotent consumers.

A row holds one event (its payload the envelope), or, written by `group_events` for a
transaction that makes thousands at once, a group of events of one subject: its payload the
number of events, a newline, then their envelopes one a line (the envelope writer writes no raw
newline). The relay publishes a group's events as the messages their own rows would have been,
each with its own id as `Nats-Msg-Id`.
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import Gauge
from sqlalchemy import BigInteger, Integer, LargeBinary, String, case, cast, delete, func, select
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


# Events a grouped row holds at most.
GROUP_SIZE = 1000
# An outbox row as group_events takes and gives it: (event_id, subject, payload, created_at).
OutboxRecord = tuple[str, str, bytes, datetime]


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


def group_events(records: Iterable[OutboxRecord], size: int = GROUP_SIZE) -> list[OutboxRecord]:
    """The outbox rows of `records` (one event each, in order) with each run of consecutive
    events of one subject made grouped rows of up to `size` events (a run of one stays as it
    is). A grouped row's event_id and created_at are its first event's."""
    rows: list[OutboxRecord] = []
    run: list[OutboxRecord] = []

    def close_run() -> None:
        if len(run) == 1:
            rows.append(run[0])
        elif run:
            event_id, subject, _, created_at = run[0]
            payload = b"%d\n" % len(run) + b"\n".join(record[2] for record in run)
            rows.append((event_id, subject, payload, created_at))
        run.clear()

    for record in records:
        if run and (record[1] != run[0][1] or len(run) >= size):
            close_run()
        run.append(record)
    close_run()
    return rows


def row_messages(subject: str, payload: bytes, event_id: str) -> list[tuple[str, bytes, str]]:
    """The messages `(subject, payload, msg_id)` of an outbox row: its one event, or each
    event of a group with its own id."""
    if payload[:1] == b"{":
        return [(subject, payload, event_id)]
    return [(subject, line, orjson.loads(line)["id"]) for line in payload.split(b"\n")[1:]]


class OutboxRelay:
    """Publishes outbox rows in `seq` order; woken by `notify()` after a commit, or every
    `interval` seconds. A round takes at most `batch` rows and, beyond its first row,
    `max_bytes` of payloads (a grouped row holds up to GROUP_SIZE events)."""

    def __init__(
        self,
        db: Database,
        model: type[OutboxMixin],
        bus: EventBus,
        *,
        interval: float = 0.5,
        batch: int = 2000,
        max_bytes: int = 2 << 20,
    ) -> None:
        self.db = db
        self.model = model
        self.bus = bus
        self.interval = interval
        self.batch = batch
        self.max_bytes = max_bytes
        # The last round left rows behind (it was full): the next one starts at once.
        self._full = False
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
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed; will retry", extra={"error": repr(exc)})
                self._full = False
            if self._full:
                continue
            await wait_event(self._wake, self.interval)
            self._wake.clear()

    async def pending(self) -> int:
        """Events waiting in the outbox (a grouped row counts its events: the count at the
        head of its payload, read without the rest)."""
        model = self.model
        head = func.substr(model.payload, 1, 12)
        if self.db.engine.dialect.name == "postgresql":
            count: Any = cast(func.split_part(func.convert_from(head, "UTF8"), "\n", 1), Integer)
        else:  # SQLite reads the leading number of a text (a blob is read as text)
            count = cast(head, Integer)
        events = func.sum(case((func.substr(model.payload, 1, 1) == b"{", 1), else_=count))
        async with self.db.sessionmaker() as session:
            return int(await session.scalar(select(func.coalesce(events, 0))) or 0)

    async def relay_once(self) -> int:
        """Publish one round of rows; returns how many events were acked (their rows
        removed)."""
        self._full = False
        if not self.bus.connected:
            return 0
        model = self.model
        async with self.db.sessionmaker() as session:
            # First the rows' sizes, then the payloads of the rows the round takes: a round
            # never reads more than `max_bytes` beyond its first row, however large the rows.
            query = (
                select(model.event_id, func.length(model.payload))
                .order_by(model.seq)
                .limit(self.batch)
            )
            if self.db.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            found = (await session.execute(query)).all()
            if not found:
                OUTBOX_BACKLOG.set(0)
                await session.rollback()
                return 0
            taken: list[str] = []
            size = 0
            for event_id, length in found:
                if taken and size + length > self.max_bytes:
                    break
                taken.append(event_id)
                size += length
            rows = (
                await session.execute(
                    select(model.subject, model.payload, model.event_id)
                    .where(model.event_id.in_(taken))
                    .order_by(model.seq)
                )
            ).all()
            messages = [message for row in rows for message in row_messages(*row)]
            # Pipelined: the round is sent in seq order, then all acks are awaited at once.
            await self.bus.publish_many(messages)
            # By event id, not seq: SQLite hands a deleted row's seq to the next insert, so
            # when another replica's relay has published and removed these rows meanwhile,
            # a seq of this list may already name a new, unpublished event.
            done = [row.event_id for row in rows]
            await session.execute(delete(model).where(model.event_id.in_(done)))
            await session.commit()
        # A round that took every row it found emptied the table (as of its start); a full
        # one may have left more.
        self._full = len(found) >= self.batch or len(taken) < len(found)
        OUTBOX_BACKLOG.set(await self.pending() if self._full else 0)
        return len(messages)
