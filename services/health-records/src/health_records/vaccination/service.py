"""The rules of a vaccination site's batch: idempotent by record id; a person's summary is
the highest dose number reported and the time of the latest dose."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from health_records.person.service import People, PersonService, PersonState
from health_records.vaccination.repository import VaccinationRepository
from health_records.vaccination.schemas import VaccinationRow


@dataclass
class VaccinationService:
    session: AsyncSession
    persons: PersonService
    repo: VaccinationRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = VaccinationRepository(self.session)

    async def ingest(self, rows: list[VaccinationRow]) -> tuple[int, int]:
        """Store the new rows and update the persons they change; returns (accepted,
        duplicates). A known record id is a duplicate and changes nothing."""
        unique: dict[str, VaccinationRow] = {}
        for row in rows:
            unique.setdefault(row.record_id, row)
        duplicates = len(rows) - len(unique)
        if not unique:
            return 0, duplicates
        # Record-id order: two batches sharing record ids take their locks in the same order.
        ordered = [unique[record_id] for record_id in sorted(unique)]
        person_key = self.persons.person_key_function()
        key_of: dict[str, str] = {}
        for row in ordered:
            if row.id_number not in key_of:
                key_of[row.id_number] = person_key(row.id_number)
        now = utcnow()
        inserted = await self.repo.insert_new(
            [
                (
                    r.record_id,
                    key_of[r.id_number],
                    r.vaccine,
                    r.manufacturer,
                    r.dose_number,
                    r.administered_at,
                    r.site,
                    now,
                )
                for r in ordered
            ]
        )
        duplicates += len(unique) - len(inserted)
        summary: dict[str, tuple[int, datetime]] = {}
        people: People = {}
        for row in ordered:
            if row.record_id not in inserted:
                continue
            key = key_of[row.id_number]
            people.setdefault(key, (row.id_number, row.name))
            doses, last = summary.get(key, (0, row.administered_at))
            summary[key] = (max(doses, row.dose_number), max(last, row.administered_at))

        def change(person: PersonState) -> dict[str, Any] | None:
            doses, last = summary[person.person_key]
            new_doses = max(person.vaccine_doses, doses)
            new_last = last if person.last_dose_at is None else max(last, person.last_dose_at)
            if (new_doses, new_last) == (person.vaccine_doses, person.last_dose_at):
                return None
            return {"vaccine_doses": new_doses, "last_dose_at": new_last}

        await self.persons.apply_batch(people, change)
        return len(inserted), duplicates
