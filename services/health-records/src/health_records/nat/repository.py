"""Every query on NAT results; never commits."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.dialect import insert_ignore
from health_records.nat.models import NatResult


class NatResultRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert in bulk, skipping known report ids; returns the report ids inserted."""
        if not rows:
            return set()
        conn = await self.session.connection()
        stmt = insert_ignore(self.session, NatResult.__table__).returning(
            NatResult.__table__.c.report_id)
        result = await conn.execute(stmt, rows)
        return set(result.scalars().all())
