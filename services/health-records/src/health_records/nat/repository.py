"""Every query on NAT results; never commits."""

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.dialect import Columns, insert_ignore_many
from health_records.nat.models import NatResult


class NatResultRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, columns: Columns) -> set[str]:
        """Insert in bulk, skipping known report ids; returns the report ids inserted."""
        return await insert_ignore_many(self.session, NatResult.__table__, columns, "report_id")
