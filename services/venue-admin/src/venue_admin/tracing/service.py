"""The rules of contact tracing over access records: a case's visits between two times, and
every scan of another subject at one of those venues within a window of one of those visits,
in time order (a subject's first row is their first such scan). Visits close together at one
venue make one interval, so a venue the case passes through every day is read once per merged
interval."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import rfc3339, utcnow
from venue_admin.tracing import repository
from venue_admin.tracing.repository import Visit

MAX_PERIOD = timedelta(days=14)
MAX_WINDOW_MINUTES = 240


@dataclass(frozen=True, slots=True)
class Interval:
    """Times at one venue within the window of at least one visit (both ends included)."""

    venue_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class CoPresence:
    visits: list[Visit]
    # The contacts, ordered by (checked_at, subject_id), as a JSON object of columns
    # (repository.CONTACT_COLUMNS): bytes as they go out, never an object per contact.
    contacts: bytes
    venue_names: dict[str, str]
    # The oldest time whose records are still kept (older ones are purged).
    records_kept_since: datetime


def merge_windows(visits: Iterable[Visit], window: timedelta) -> list[Interval]:
    """Each visit's window, `checked_at - window` to `checked_at + window`, merged per venue
    where windows overlap or touch: by venue id, then by time."""
    merged: list[Interval] = []
    ordered = sorted(visits, key=lambda v: (v.venue_id, v.checked_at))
    for venue_id, at_venue in groupby(ordered, key=lambda v: v.venue_id):
        current: Interval | None = None
        for visit in at_venue:
            start, end = visit.checked_at - window, visit.checked_at + window
            if current is not None and start <= current.end:
                current = Interval(venue_id, current.start, max(current.end, end))
                continue
            if current is not None:
                merged.append(current)
            current = Interval(venue_id, start, end)
        if current is not None:
            merged.append(current)
    return merged


async def co_presence(
    session: AsyncSession,
    subject_id: str,
    start: datetime,
    end: datetime,
    window: timedelta,
    retention_days: int,
) -> CoPresence:
    """The case's visits (scans of `subject_id` from `start` to `end`, oldest first) and the
    contacts: the scans of every other subject at a visit's venue within `window` of the visit
    (which may reach up to `window` beyond `start` and `end`), ordered by time, venue id and
    subject id, so that a subject's first row is their first such scan (a tie between venues:
    the smaller venue id). A subject scanned more than once is there each time: the reader
    keeps the first (health-records' tracing)."""
    found = await repository.visits(session, subject_id, start, end)
    intervals = merge_windows(found, window)
    if repository.is_postgres(session):
        contacts = await repository.contacts_json(
            session, [(i.venue_id, i.start, i.end) for i in intervals], excluding=subject_id
        )
    else:
        contacts = await _contacts_here(session, intervals, subject_id)
    names = await repository.venue_names(session, {v.venue_id for v in found})
    return CoPresence(
        visits=found,
        contacts=contacts,
        venue_names=names,
        records_kept_since=utcnow() - timedelta(days=retention_days),
    )


async def _contacts_here(
    session: AsyncSession, intervals: list[Interval], subject_id: str
) -> bytes:
    """repository.contacts_json's answer worked out here, an interval at a time (SQLite)."""
    rows = [
        (scan.checked_at, interval.venue_id, scan.subject_id, scan.masked_name)
        for interval in intervals
        for scan in await repository.scans(
            session, interval.venue_id, interval.start, interval.end, excluding=subject_id
        )
    ]
    rows.sort(key=lambda row: row[:3])
    columns = [
        [subject for _, _, subject, _ in rows],
        [venue_id for _, venue_id, _, _ in rows],
        [rfc3339(at) for at, _, _, _ in rows],
        [name for _, _, _, name in rows],
    ]
    return orjson.dumps(dict(zip(repository.CONTACT_COLUMNS, columns, strict=True)))
