"""Every query on access records; never commits."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, literal, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import to_utc
from hc_common.db import UTCDateTime
from hc_common.events.schemas import AccessRecordCreated
from venue_admin.access.models import AccessRecord


def row_of(record: AccessRecordCreated) -> dict[str, Any]:
    """The table row of an access-record event."""
    return {
        "record_id": record["record_id"],
        "venue_id": record["venue_id"],
        "checked_at": to_utc(record["checked_at"]),
        "decision": record["decision"],
        "reasons": record["reasons"],
        "masked_name": record["masked_name"],
        "color": record["color"],
        "credential_id": record["credential_id"],
        "scanner_kind": record["scanner"]["kind"],
        "scanner_id": record["scanner"]["id"],
    }


class AccessRecordRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, records: Iterable[AccessRecordCreated]) -> int:
        """Insert the records whose record_id is new; a known record_id changes nothing.
        Returns how many were new where the driver reports it (0 otherwise)."""
        rows = [row_of(record) for record in records]
        if not rows:
            return 0
        # Core executemany on the session's connection: one round trip per batch.
        connection = await self.session.connection()
        if connection.dialect.name == "postgresql":
            stmt: Any = postgresql.insert(AccessRecord).on_conflict_do_nothing(
                index_elements=["record_id"]
            )
        else:
            stmt = insert(AccessRecord).prefix_with("OR IGNORE")
        result = await connection.execute(stmt, rows)
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
        query = select(AccessRecord).where(AccessRecord.venue_id == venue_id)
        if start is not None:
            query = query.where(AccessRecord.checked_at >= start)
        if end is not None:
            query = query.where(AccessRecord.checked_at < end)
        if decision is not None:
            query = query.where(AccessRecord.decision == decision)
        if after is not None:
            at, record_id = after
            # A row-value comparison, so that the (venue_id, checked_at, record_id) index
            # serves deep pages too (an OR of two conditions does not).
            query = query.where(
                tuple_(AccessRecord.checked_at, AccessRecord.record_id)
                < tuple_(literal(at, UTCDateTime()), literal(record_id))
            )
        query = query.order_by(AccessRecord.checked_at.desc(), AccessRecord.record_id.desc())
        return list((await self.session.scalars(query.limit(limit))).all())

    async def purge_before(self, cutoff: datetime) -> int:
        result = await self.session.execute(
            delete(AccessRecord).where(AccessRecord.checked_at < cutoff)
        )
        return max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]
