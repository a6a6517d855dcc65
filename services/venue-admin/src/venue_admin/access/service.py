"""The rules of access records: stored once per record id, shown to the venue's members
newest first (a page, or every row as CSV), kept for the retention period and then purged."""

import asyncio
import base64
import csv
import io
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import stamina
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hc_common.clock import rfc3339, to_utc, utcnow
from hc_common.errors import Unprocessable
from hc_common.events.schemas import AccessRecordCreated
from hc_common.hygiene import is_id
from hc_common.pagination import Page, page_of
from venue_admin.access.models import AccessRecord
from venue_admin.access.repository import AccessRecordRepository
from venue_admin.access.schemas import CSV_HEADER
from venue_admin.venue.service import VenueService

log = logging.getLogger("venue_admin.access")

CSV_CHUNK = 2000
# What a spreadsheet takes for the start of a formula (OWASP's list for CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A cell as written to the CSV: with a leading `'` where it would start a formula
    (a holder named `=cmd|' /C calc'!A0` shows as text, it does not run)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def encode_cursor(record: AccessRecord) -> str:
    raw = f"{to_utc(record.checked_at).isoformat()}|{record.record_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (checked_at, record_id) of a page's last row; 422 `invalid_cursor` for anything
    that is not a cursor this service wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, record_id = raw.split("|", 1)
        if not is_id(record_id):
            raise ValueError("not a record id")
        return to_utc(datetime.fromisoformat(at)), record_id
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable(
            "invalid_cursor", detail="分页游标无效", detail_en="Invalid cursor"
        ) from None


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
    ) -> AsyncIterator[bytes]:
        """Every matching record as CSV (members only: checked here, before the first byte)."""
        await self.venues.venue_for_member(venue_id, user_id)
        return csv_rows(self.sessionmaker, venue_id, start=start, end=end, decision=decision)


async def csv_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    venue_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    decision: str | None,
) -> AsyncIterator[bytes]:
    """Every matching record as CSV, newest first, read in keyset chunks so that memory
    stays flat however many rows there are."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    yield buffer.getvalue().encode()
    after: tuple[datetime, str] | None = None
    while True:
        async with sessionmaker() as session:
            rows = await AccessRecordRepository(session).page(
                venue_id, start=start, end=end, decision=decision, after=after, limit=CSV_CHUNK
            )
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        for r in rows:
            writer.writerow(
                [
                    csv_cell(cell)
                    for cell in (
                        r.record_id,
                        rfc3339(r.checked_at),
                        r.decision,
                        ";".join(r.reasons),
                        r.masked_name or "",
                        r.color or "",
                        r.scanner_kind,
                        r.scanner_id,
                    )
                ]
            )
        yield buffer.getvalue().encode()
        if len(rows) < CSV_CHUNK:
            return
        after = (rows[-1].checked_at, rows[-1].record_id)


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
