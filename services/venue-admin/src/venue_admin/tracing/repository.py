"""Every query of contact tracing on access records; never commits.

Plain functions taking an `AsyncSession`, so that a benchmark can call them directly. Each is
one statement that PostgreSQL serves from an index:

- `visits`: `ix_access_records_subject_checked` (subject_id, checked_at), a range scan;
- `contacts_json` (PostgreSQL): for each merged interval, an index-only range scan of
  `ix_access_records_venue_checked` (venue_id, checked_at, record_id) INCLUDE (subject_id,
  masked_name); the scans ordered and written as JSON by the database, so that a city's
  worst day (200,000 contacts) costs this process one text value, not an object per row;
- `scans` (SQLite, the local default): the same per interval, as rows;
- `venue_names`: the venues' primary key.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from venue_admin.access.models import AccessRecord
from venue_admin.venue.models import Venue

# A time as the API writes it (`2026-11-27T08:00:00Z`: whole seconds, UTC; to_char truncates
# the fraction, as hc_common.clock.rfc3339 does).
_PG_TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'


# The contacts' columns, each a JSON array in the contacts' order.
CONTACT_COLUMNS = ("subject_ids", "venue_ids", "checked_at", "masked_names")
EMPTY_CONTACTS = orjson.dumps({key: [] for key in CONTACT_COLUMNS})


@dataclass(frozen=True, slots=True)
class Visit:
    """One scan of the case: where and when."""

    venue_id: str
    checked_at: datetime


@dataclass(frozen=True, slots=True)
class Scan:
    """Another subject's scan within one interval: who, when, and the name it showed
    (masked)."""

    subject_id: str
    checked_at: datetime
    masked_name: str | None


async def visits(
    session: AsyncSession, subject_id: str, start: datetime, end: datetime
) -> list[Visit]:
    """Every scan of `subject_id` with `start <= checked_at <= end`, oldest first (ties by
    record id, so the order is stable)."""
    query = (
        select(AccessRecord.venue_id, AccessRecord.checked_at)
        .where(
            AccessRecord.subject_id == subject_id,
            AccessRecord.checked_at >= start,
            AccessRecord.checked_at <= end,
        )
        .order_by(AccessRecord.checked_at, AccessRecord.record_id)
    )
    return [Visit(venue_id, at) for venue_id, at in (await session.execute(query)).all()]


# Each interval's scans by a range scan of the index (OFFSET 0 keeps the subquery whole: pulled
# up, it becomes a hash join over a sequential scan of the table); the index carries subject_id
# and masked_name, so the scan reads no table page (index-only, where the visibility map says
# the pages are all visible). Every scan, in (checked_at, venue_id, subject_id) order: a
# subject's first row is their first scan within any interval (a tie between venues goes to
# the smaller venue id), and health-records keeps only that one. Keeping it here took a sort
# by subject (DISTINCT ON) that cost more than the rest of the statement: 0.3 of a city's
# 0.65 s, for a list in which a subject seldom repeats. Ids compare as bytes (COLLATE "C": their
# alphabet is ASCII, the order the SQLite path gives too, sorted without the locale's rules).
# The answer is columns (one JSON array each): the aggregates take the rows in the sorted
# subquery's order, all from one pass (so the columns are aligned), rather than each sorting
# them again (PostgreSQL 15 sorts every aggregate's ORDER BY on its own).
_CONTACTS_SQL = text(
    """
    SELECT json_build_object(
        'subject_ids', coalesce(json_agg(subject_id), '[]'),
        'venue_ids', coalesce(json_agg(venue_id), '[]'),
        'checked_at', coalesce(
            json_agg(to_char(checked_at AT TIME ZONE 'UTC', :time_format)), '[]'
        ),
        'masked_names', coalesce(json_agg(masked_name), '[]')
    )::text
    FROM (
        SELECT a.subject_id, a.venue_id, a.checked_at, a.masked_name
        FROM json_to_recordset(CAST(:intervals AS json))
            AS i(venue_id text, start_at timestamptz, end_at timestamptz)
        CROSS JOIN LATERAL (
            SELECT subject_id, venue_id, checked_at, masked_name FROM access_records
            WHERE venue_id = i.venue_id AND checked_at >= i.start_at AND checked_at <= i.end_at
            OFFSET 0
        ) AS a
        WHERE a.subject_id IS NOT NULL AND a.subject_id <> :excluding
        ORDER BY a.checked_at, a.venue_id COLLATE "C", a.subject_id COLLATE "C"
    ) AS ordered
    """
)
# The statement's sort (a city's trace: 200,000 scans, 40 MB) in memory rather
# than temporary files (the server's work_mem is 4 MB), and no JIT compilation (its planned
# cost is far above jit_above_cost, yet the work is a few sorts: compiling costs more than it
# saves); for this transaction only.
_CONTACTS_SETTINGS = (text("SET LOCAL work_mem = '128MB'"), text("SET LOCAL jit = off"))


async def contacts_json(
    session: AsyncSession,
    intervals: Sequence[tuple[str, datetime, datetime]],
    *,
    excluding: str,
) -> bytes:
    """PostgreSQL: the scans of subjects other than `excluding` at `venue_id` with
    `start <= checked_at <= end` for one of `intervals` (venue_id, start, end), ordered by
    (checked_at, venue_id, subject_id), as a JSON object of columns `subject_ids`,
    `venue_ids`, `checked_at`, `masked_names` (see CONTACT_COLUMNS). A subject scanned more
    than once is there each time, their first scan first. Scans without a subject are left
    out."""
    if not intervals:
        return EMPTY_CONTACTS
    for setting in _CONTACTS_SETTINGS:
        await session.execute(setting)
    found = await session.scalar(
        _CONTACTS_SQL,
        {
            "intervals": orjson.dumps(
                [{"venue_id": v, "start_at": s, "end_at": e} for v, s, e in intervals]
            ).decode(),
            "excluding": excluding,
            "time_format": _PG_TIME_FORMAT,
        },
    )
    return str(found).encode()


async def scans(
    session: AsyncSession, venue_id: str, start: datetime, end: datetime, *, excluding: str
) -> list[Scan]:
    """The scans at `venue_id` with `start <= checked_at <= end` of subjects other than
    `excluding` (the case). Scans without a subject (the credential did not check) name no one
    and are left out."""
    query = select(
        AccessRecord.subject_id, AccessRecord.checked_at, AccessRecord.masked_name
    ).where(
        AccessRecord.venue_id == venue_id,
        AccessRecord.checked_at >= start,
        AccessRecord.checked_at <= end,
        AccessRecord.subject_id.is_not(None),
        AccessRecord.subject_id != excluding,
    )
    return [Scan(str(subject), at, name) for subject, at, name in await session.execute(query)]


async def venue_names(session: AsyncSession, venue_ids: Collection[str]) -> dict[str, str]:
    """The names of those venues that exist, by id."""
    if not venue_ids:
        return {}
    query = select(Venue.id, Venue.name).where(Venue.id.in_(list(venue_ids)))
    return {venue_id: name for venue_id, name in (await session.execute(query)).all()}
