"""Every query on access records; never commits."""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Row, Select, delete, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import to_utc
from hc_common.db import UTCDateTime
from hc_common.events.schemas import AccessRecordCreated
from venue_admin.access.models import AccessRecord

# The columns the inserts below write, in the order of `_driver_row`'s values.
_COLUMNS = (
    "record_id",
    "venue_id",
    "checked_at",
    "decision",
    "reasons",
    "masked_name",
    "color",
    "credential_id",
    "subject_id",
    "scanner_kind",
    "scanner_id",
)
_NAMES = ", ".join(_COLUMNS)
# SQLite: one executemany of rows as its driver takes them.
_SQLITE_INSERT = (
    f"INSERT OR IGNORE INTO access_records ({_NAMES}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
# PostgreSQL: the batch as one array a column, unnested by the server (one statement, a
# handful of parameters, whatever the batch's size).
_PG_INSERT = (
    f"INSERT INTO access_records ({_NAMES}) "
    f"SELECT {', '.join(c + '::json' if c == 'reasons' else c for c in _COLUMNS)} FROM unnest("
    "$1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) "
    f"AS r({_NAMES}) ON CONFLICT (record_id) DO NOTHING"
)


def _sqlite_time(value: datetime) -> str:
    """A time as SQLAlchemy's DATETIME writes it on SQLite (UTCDateTime: naive UTC,
    microseconds always), so that the rows read back and compare as the model's."""
    return to_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def _driver_row(record: AccessRecordCreated, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The row of an access-record event as the drivers take it (`_COLUMNS`' order; the reasons
    as JSON text, the time by `time`). Written here rather than by SQLAlchemy's bind
    processing, which cost venue-admin more per record than the insert itself."""
    scanner = record["scanner"]
    return (
        record["record_id"],
        record["venue_id"],
        time(record["checked_at"]),
        record["decision"],
        orjson.dumps(record["reasons"]).decode(),
        record["masked_name"],
        record["color"],
        record["credential_id"],
        record.get("subject_id"),
        scanner["kind"],
        scanner["id"],
    )


class AccessRecordRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, records: Iterable[AccessRecordCreated]) -> int:
        """Insert the records whose record_id is new; a known record_id changes nothing.
        Returns how many were new where the driver reports it (0 otherwise)."""
        # One statement on the session's connection: one round trip per batch.
        connection = await self.session.connection()
        if connection.dialect.name == "sqlite":
            rows = [_driver_row(record, _sqlite_time) for record in records]
            if not rows:
                return 0
            result: Any = await connection.exec_driver_sql(_SQLITE_INSERT, rows)
        else:
            rows = [_driver_row(record, to_utc) for record in records]
            if not rows:
                return 0
            columns = tuple(list(column) for column in zip(*rows, strict=True))
            result = await connection.exec_driver_sql(_PG_INSERT, columns)
        return max(int(getattr(result, "rowcount", 0) or 0), 0)

    async def page(
        self,
        venue_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        decision: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[AccessRecord]:
        """Newest first; `after` is the (checked_at, record_id) of the last row already seen."""
        query = _newest_first(select(AccessRecord), venue_id, start, end, decision, after).limit(
            limit
        )
        return list((await self.session.scalars(query)).all())

    async def purge_before(self, cutoff: datetime) -> int:
        result = await self.session.execute(
            delete(AccessRecord).where(AccessRecord.checked_at < cutoff)
        )
        return max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]

    async def export_chunk(
        self,
        venue_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        decision: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> Sequence["ExportRow"]:
        """The rows of `page` as plain rows of the CSV's columns, not ORM objects: the export
        reads every row of a venue, and without objects the read is ~2.4 times as fast
        (tests/bench/bench_venue_admin.py)."""
        query = _newest_first(select(*EXPORT_COLUMNS), venue_id, start, end, decision, after)
        return (await self.session.execute(query.limit(limit))).all()


SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def _newest_first(
    query: SelectT,
    venue_id: str,
    start: datetime | None,
    end: datetime | None,
    decision: str | None,
    after: tuple[datetime, str] | None,
) -> SelectT:
    """`query` over one venue's records, filtered, newest first; `after` is the (checked_at,
    record_id) of the last row already seen."""
    query = query.where(AccessRecord.venue_id == venue_id)
    if start is not None:
        query = query.where(AccessRecord.checked_at >= start)
    if end is not None:
        query = query.where(AccessRecord.checked_at < end)
    if decision is not None:
        query = query.where(AccessRecord.decision == decision)
    if after is not None:
        at, record_id = after
        # A row-value comparison, so that the (venue_id, checked_at, record_id) index serves
        # deep pages too (an OR of two conditions does not).
        query = query.where(
            tuple_(AccessRecord.checked_at, AccessRecord.record_id)
            < tuple_(literal(at, UTCDateTime()), literal(record_id))
        )
    return query.order_by(AccessRecord.checked_at.desc(), AccessRecord.record_id.desc())


# The columns of the CSV export, read by export_chunk, and its rows.
EXPORT_COLUMNS = (
    AccessRecord.record_id,
    AccessRecord.checked_at,
    AccessRecord.decision,
    AccessRecord.reasons,
    AccessRecord.masked_name,
    AccessRecord.color,
    AccessRecord.scanner_kind,
    AccessRecord.scanner_id,
)
ExportRow = Row[str, datetime, str, list[str], str | None, str | None, str, str]
