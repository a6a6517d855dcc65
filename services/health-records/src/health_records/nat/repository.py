"""Every query on NAT results; never commits."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.dialect import insert_new_rows
from health_records.nat.models import NatResult

# The columns of a record given to insert_new, in order.
COLUMNS = ("report_id", "person_key", "result", "sample_time", "report_time", "institution",
           "received_at")


class NatResultRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, records: list[tuple[Any, ...]]) -> set[str]:
        """Insert in bulk (tuples of COLUMNS), skipping known report ids; returns the report
        ids inserted."""
        return await insert_new_rows(self.session, NatResult.__table__, COLUMNS, records,
                                     "report_id")
