"""The rules of a vaccination site's batch: idempotent by record id; a person's summary is
the highest dose number reported and the time of the latest dose; a record under a name that
is not the person's is refused."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from health_records.person.service import (
    Ingested,
    People,
    PersonService,
    PersonState,
    finish,
    taken_back,
)
from health_records.vaccination.repository import VaccinationRepository
from health_records.vaccination.schemas import VaccinationRow


@dataclass
class VaccinationService:
    session: AsyncSession
    persons: PersonService
    repo: VaccinationRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = VaccinationRepository(self.session)

    async def ingest(self, rows: list[VaccinationRow], indexes: Sequence[int]) -> Ingested:
        """Store the new rows and update the persons they change. A known record id is a
        duplicate and changes nothing. A new row whose name is not the person's
        (PersonService.mismatched) is refused: its index (of `indexes`) is listed."""
        unique: dict[str, tuple[int, VaccinationRow]] = {}
        for index, row in zip(indexes, rows, strict=True):
            if row.record_id not in unique:
                unique[row.record_id] = (index, row)
        known = await self.repo.known(list(unique))
        # In the order sent: the first row names a person who has no name yet.
        sent = [pair for record_id, pair in unique.items() if record_id not in known]
        if not sent:
            return Ingested(0, len(rows), [])
        key_of, name_key_of = finish(
            self.persons.batch_keys(
                [row.id_number for _, row in sent], [row.name for _, row in sent]
            )
        )
        locked = await self.persons.lock(list({key_of[row.id_number] for _, row in sent}))
        refusing = set(
            self.persons.mismatched(
                [(key_of[row.id_number], name_key_of[row.name]) for _, row in sent], locked
            )
        )
        refused = [sent[at][0] for at in sorted(refusing)]
        # Record-id order: two batches sharing record ids take their locks in the same order.
        ordered = sorted(
            (row for at, (_, row) in enumerate(sent) if at not in refusing),
            key=lambda row: row.record_id,
        )
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

        taken: set[str] = set()
        await self.persons.apply_batch(
            people,
            change,
            locked={key: state for key, state in locked.items() if key in people},
            refused=taken,
        )
        if taken:  # persons created meanwhile under another name: their records taken back
            back = taken_back(
                ((row.record_id, key_of[row.id_number]) for row in ordered), inserted, taken
            )
            await self.repo.delete(back)
            inserted.difference_update(back)
            refused += [unique[record_id][0] for record_id in back]
        return Ingested(len(inserted), len(rows) - len(inserted) - len(refused), sorted(refused))
