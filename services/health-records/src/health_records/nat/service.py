"""The rules of a lab's batch: idempotent by report id, the latest result by sample time
becomes the person's NAT status (and a positive one turns the code red)."""

from dataclasses import dataclass

from hc_common.clock import to_utc, utcnow
from health_records.nat.repository import NatResultRepository
from health_records.nat.schemas import NatResultIn
from health_records.person.service import PersonService


@dataclass
class NatService:
    persons: PersonService

    @property
    def repo(self) -> NatResultRepository:
        return NatResultRepository(self.persons.session)

    async def ingest(self, rows: list[NatResultIn]) -> tuple[int, int]:
        """Store the new rows and update the persons they change; returns (accepted,
        duplicates). A report id seen before, in an earlier batch or earlier in this one, is a
        duplicate and changes nothing."""
        unique: dict[str, NatResultIn] = {}
        for row in rows:
            unique.setdefault(row.report_id, row)
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
            {"report_id": row.report_id, "person_key": key_of[row.id_number],
             "result": row.result, "sample_time": to_utc(row.sample_time),
             "report_time": to_utc(row.report_time), "institution": row.institution,
             "received_at": now}
            for row in unique.values()])
        duplicates += len(unique) - len(inserted)
        latest: dict[str, NatResultIn] = {}
        for row in unique.values():
            if row.report_id not in inserted:
                continue
            key = key_of[row.id_number]
            best = latest.get(key)
            if best is None or (row.sample_time, row.report_time) > (best.sample_time,
                                                                      best.report_time):
                latest[key] = row
        changes = []
        for key, row in latest.items():
            person = persons[key]
            if person.nat_sample_time is not None and (row.sample_time, row.report_time) <= (
                    person.nat_sample_time, person.nat_report_time or person.nat_sample_time):
                continue  # an older test than the one the status shows
            changes.append((person, {"nat_result": row.result,
                                     "nat_sample_time": to_utc(row.sample_time),
                                     "nat_report_time": to_utc(row.report_time)}))
        await self.persons.change_many(changes)
        await self.persons.session.flush()
        return len(inserted), duplicates
