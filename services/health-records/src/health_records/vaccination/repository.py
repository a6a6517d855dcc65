"""Every query on vaccination records; never commits."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.person.repository import delete_rows, existing, insert_new_rows
from health_records.vaccination.models import VaccinationRecord

# The columns of a record given to insert_new, in order.
COLUMNS = (
    "record_id",
    "person_key",
    "vaccine",
    "manufacturer",
    "dose_number",
    "administered_at",
    "site",
    "received_at",
)


class VaccinationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known(self, record_ids: list[str]) -> set[str]:
        """The record ids stored already (one statement)."""
        return await existing(self.session, VaccinationRecord.__table__, "record_id", record_ids)

    async def insert_new(self, records: list[tuple[Any, ...]]) -> set[str]:
        """Insert in bulk (tuples of COLUMNS), skipping known record ids (also those a
        concurrent batch stored meanwhile); returns the record ids inserted."""
        return await insert_new_rows(
            self.session, VaccinationRecord.__table__, COLUMNS, records, "record_id", checked=True
        )

    async def delete(self, record_ids: list[str]) -> None:
        """Take back records this transaction stored."""
        await delete_rows(self.session, VaccinationRecord.__table__, "record_id", record_ids)
