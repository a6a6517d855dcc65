"""Every query on vaccination records; never commits."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.dialect import insert_ignore
from health_records.vaccination.models import VaccinationRecord


class VaccinationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert in bulk, skipping known record ids; returns the record ids inserted."""
        if not rows:
            return set()
        conn = await self.session.connection()
        stmt = insert_ignore(self.session, VaccinationRecord.__table__).returning(
            VaccinationRecord.__table__.c.record_id)
        result = await conn.execute(stmt, rows)
        return set(result.scalars().all())
