"""The rules of access records: stored once per record id, shown to the venue's members
newest first (a page, or every row as CSV), kept for the retention period and then purged."""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import stamina
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hc_common.clock import utcnow
from hc_common.events.schemas import AccessRecordCreated
from hc_common.pagination import Page, decode_time_cursor, encode_time_cursor, page_of
from venue_admin.access.export import csv_rows, export_file_names
from venue_admin.access.models import AccessRecord
from venue_admin.access.repository import AccessRecordRepository
from venue_admin.venue.service import VenueService

log = logging.getLogger("venue_admin.access")


def encode_cursor(record: AccessRecord) -> str:
    return encode_time_cursor(record.checked_at, record.record_id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (checked_at, record_id) of a page's last row; 422 `invalid_cursor` otherwise."""
    return decode_time_cursor(cursor)


@dataclass(frozen=True, slots=True)
class CsvExport:
    file_name: str  # with the venue's name
    ascii_file_name: str  # for clients that take only an ASCII name
    body: AsyncIterator[bytes]


@dataclass
class AccessRecordService:
    """A venue's records for its members. The CSV export streams after the request's session
    is gone, so it reads with sessions of its own from `sessionmaker`."""

    session: AsyncSession
    sessionmaker: async_sessionmaker[AsyncSession]
    venues: VenueService
    repo: AccessRecordRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = AccessRecordRepository(self.session)

    async def page(
        self,
        user_id: str,
        venue_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        decision: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[AccessRecord]:
        """Newest first (members only); `start` inclusive, `end` exclusive."""
        await self.venues.venue_for_member(venue_id, user_id)
        after = decode_cursor(cursor) if cursor else None
        rows = await self.repo.page(
            venue_id, start=start, end=end, decision=decision, after=after, limit=limit + 1
        )
        return page_of(rows, limit, encode_cursor)

    async def export_csv(
        self,
        user_id: str,
        venue_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        decision: str | None,
        english: bool,
    ) -> CsvExport:
        """Every matching record as CSV (members only: checked here, before the first byte),
        with the file's names."""
        venue, _member = await self.venues.venue_for_member(venue_id, user_id)
        file_name, ascii_file_name = export_file_names(
            venue_id, venue.name, start=start, end=end, decision=decision, english=english
        )
        body = csv_rows(
            self.sessionmaker, venue_id, start=start, end=end, decision=decision, english=english
        )
        return CsvExport(file_name, ascii_file_name, body)


async def store(
    sessionmaker: async_sessionmaker[AsyncSession], records: Iterable[AccessRecordCreated]
) -> int:
    """Store a batch of access records in one transaction of its own (the consumer acks the
    batch after it); a record id already stored, or twice in the batch, is kept once.
    Returns how many rows were new."""
    unique: dict[str, AccessRecordCreated] = {}
    for record in records:
        unique.setdefault(record["record_id"], record)
    if not unique:
        return 0
    async with sessionmaker() as session:
        stored = await AccessRecordRepository(session).insert_new(unique.values())
        await session.commit()
    return stored


async def purge(sessionmaker: async_sessionmaker[AsyncSession], retention_days: int) -> int:
    """Delete records checked before the retention period, in a transaction of its own;
    returns how many."""
    async with sessionmaker() as session:
        removed = await AccessRecordRepository(session).purge_before(
            utcnow() - timedelta(days=retention_days)
        )
        await session.commit()
    return removed


async def purge_forever(
    sessionmaker: async_sessionmaker[AsyncSession], retention_days: int, interval: float
) -> None:
    """Purge every `interval` seconds. A purge that fails (the database away) is retried with
    backoff, up to the interval, rather than waiting a whole interval for the next round."""
    while True:
        async for attempt in stamina.retry_context(
            on=Exception,
            attempts=None,
            timeout=None,
            wait_initial=1.0,
            wait_max=max(interval, 1.0),
        ):
            with attempt:
                removed = await purge(sessionmaker, retention_days)
        if removed:
            log.info("access records purged", extra={"count": removed})
        await asyncio.sleep(interval)
