"""Every query on NAT results; never commits."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.nat.models import NatResult
from health_records.person.repository import insert_new_rows, is_postgres, pg_existing

# The columns of a record given to insert_new, in order.
COLUMNS = (
    "report_id",
    "person_key",
    "result",
    "sample_time",
    "report_time",
    "institution",
    "received_at",
)


class NatResultRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known(self, report_ids: list[str]) -> set[str]:
        """The report ids stored already, on PostgreSQL (one statement); on SQLite none are
        looked up (insert_new skips them itself there)."""
        if not is_postgres(self.session):
            return set()
        return await pg_existing(self.session, NatResult.__table__, "report_id", report_ids)

    async def insert_new(
        self, records: list[tuple[Any, ...]], *, checked: bool = False
    ) -> set[str]:
        """Insert in bulk (tuples of COLUMNS), skipping known report ids; returns the report
        ids inserted. `checked`: the caller has just left out those `known` gave."""
        return await insert_new_rows(
            self.session, NatResult.__table__, COLUMNS, records, "report_id", checked=checked
        )
