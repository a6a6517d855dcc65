"""The rules of a vaccination site's batch: idempotent by record id; a person's summary is
the highest dose number reported and the time of the latest dose."""

from dataclasses import dataclass

from hc_common.clock import to_utc, utcnow
from health_records.person.service import PersonService
from health_records.vaccination.repository import VaccinationRepository
from health_records.vaccination.schemas import VaccinationIn


@dataclass
class VaccinationService:
    persons: PersonService

    @property
    def repo(self) -> VaccinationRepository:
        return VaccinationRepository(self.persons.session)

    async def ingest(self, rows: list[VaccinationIn]) -> tuple[int, int]:
        """Store the new rows and update the persons they change; returns (accepted,
        duplicates)."""
        unique: dict[str, VaccinationIn] = {}
        for row in rows:
            unique.setdefault(row.record_id, row)
        duplicates = len(rows) - len(unique)
        if not unique:
            return 0, duplicates
        key_of: dict[str, str] = {}
        people: dict[str, tuple[str, str | None]] = {}
        for row in unique.values():
            key = key_of.get(row.id_number)
            if key is None:
                key = key_of[row.id_number] = self.persons.person_key(row.id_number)
            people.setdefault(key, (row.id_number, row.name))
        persons = await self.persons.lock_many(people)
        now = utcnow()
        inserted = await self.repo.insert_new([
            {"record_id": row.record_id, "person_key": key_of[row.id_number],
             "vaccine": row.vaccine, "manufacturer": row.manufacturer,
             "dose_number": row.dose_number, "administered_at": to_utc(row.administered_at),
             "site": row.site, "received_at": now}
            for row in unique.values()])
        duplicates += len(unique) - len(inserted)
        summary: dict[str, tuple[int, object]] = {}
        for row in unique.values():
            if row.record_id not in inserted:
                continue
            key = key_of[row.id_number]
            doses, last = summary.get(key, (0, None))
            at = to_utc(row.administered_at)
            summary[key] = (max(doses, row.dose_number),
                            at if last is None or at > last else last)  # type: ignore[operator]
        changes = []
        for key, (doses, last) in summary.items():
            person = persons[key]
            new_doses = max(person.vaccine_doses, doses)
            new_last = last if person.last_dose_at is None or last > person.last_dose_at \
                else person.last_dose_at  # type: ignore[operator]
            if (new_doses, new_last) == (person.vaccine_doses, person.last_dose_at):
                continue
            changes.append((person, {"vaccine_doses": new_doses, "last_dose_at": new_last}))
        await self.persons.change_many(changes)
        await self.persons.session.flush()
        return len(inserted), duplicates
