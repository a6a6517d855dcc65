"""Every query on vaccination records; never commits."""

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.dialect import Columns, insert_ignore_many
from health_records.vaccination.models import VaccinationRecord


class VaccinationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, columns: Columns) -> set[str]:
        """Insert in bulk, skipping known record ids; returns the record ids inserted."""
        return await insert_ignore_many(self.session, VaccinationRecord.__table__, columns,
                                        "record_id")
