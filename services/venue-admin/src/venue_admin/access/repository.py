"""Every query on access records; never commits."""

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, literal, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.db import UTCDateTime
from venue_admin.access.models import AccessRecord


class AccessRecordRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, rows: list[dict[str, Any]]) -> int:
        """Insert the rows whose record_id is new; a known record_id changes nothing.
        Returns how many were new where the driver reports it (0 otherwise)."""
        if not rows:
            return 0
        if self.session.bind.dialect.name == "postgresql":
            stmt: Any = postgresql.insert(AccessRecord).on_conflict_do_nothing(
                index_elements=["record_id"]
            )
        else:
            stmt = insert(AccessRecord).prefix_with("OR IGNORE")
        # Core executemany on the session's connection: one round trip per batch.
        connection = await self.session.connection()
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
