"""The rules of a lab's batch: idempotent by report id, the latest result by sample time
becomes the person's NAT status (and a positive one turns the code red)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from health_records.nat.repository import NatResultRepository
from health_records.nat.schemas import NatRow
from health_records.person.service import (
    Change,
    People,
    PersonService,
    PersonState,
    Work,
    overlap,
)


@dataclass
class NatService:
    session: AsyncSession
    persons: PersonService
    repo: NatResultRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = NatResultRepository(self.session)

    async def ingest(self, rows: list[NatRow]) -> tuple[int, int]:
        """Store the new rows and update the persons they change; returns (accepted,
        duplicates). A report id seen before, in an earlier batch or earlier in this one, is a
        duplicate and changes nothing (it creates no person either)."""
        unique: dict[str, NatRow] = {}
        for row in rows:
            unique.setdefault(row.report_id, row)
        duplicates = len(rows) - len(unique)
        if not unique:
            return 0, duplicates
        # Report-id order: two batches sharing report ids take their locks in the same order.
        ordered = [unique[report_id] for report_id in sorted(unique)]
        # The database looks up the report ids while the persons' keys are worked out here.
        known, key_of = await overlap(
            self.repo.known([row.report_id for row in ordered]),
            self.persons.person_keys([row.id_number for row in ordered]),
        )
        if known:
            ordered = [row for row in ordered if row.report_id not in known]
        if not ordered:
            return 0, duplicates + len(unique)
        # The database locks the persons while the results' rows and the plan are made here.
        locked, (records, (people, change)) = await overlap(
            self.persons.lock(sorted({key_of[row.id_number] for row in ordered})),
            self._records(ordered, key_of, utcnow()),
        )
        inserted: set[str] = set()

        async def store() -> bool:
            """The results, stored while the persons' rows are made: False when a concurrent
            batch stored some of them meanwhile (they are duplicates then)."""
            nonlocal inserted
            inserted = await self.repo.insert_new(records, checked=True)
            return len(inserted) == len(records)

        # The rows that are not known are planned as stored; should some turn out stored
        # meanwhile, the plan is made again from those that were.
        if await self.persons.apply_batch(people, change, store, locked=locked) is None:
            await self.persons.apply_batch(
                *self._plan([row for row in ordered if row.report_id in inserted], key_of)
            )
        return len(inserted), duplicates + len(unique) - len(inserted)

    def _records(
        self, rows: list[NatRow], key_of: dict[str, str], now: datetime
    ) -> Work[tuple[list[tuple[Any, ...]], tuple[People, Change]]]:
        """The results' rows (NatResultRepository.COLUMNS), then the plan (_plan)."""
        records = [
            (
                row.report_id,
                key_of[row.id_number],
                row.result,
                row.sample_time,
                row.report_time,
                row.institution,
                now,
            )
            for row in rows
        ]
        yield
        return records, self._plan(rows, key_of)

    @staticmethod
    def _plan(rows: list[NatRow], key_of: dict[str, str]) -> tuple[People, Change]:
        """The persons of stored rows (key -> ID number, name) and the change of each: the
        latest result by sample time (a later report time breaks a tie), unless the person's
        status shows a later one already."""
        latest: dict[str, NatRow] = {}
        people: People = {}
        for row in rows:
            key = key_of[row.id_number]
            people.setdefault(key, (row.id_number, row.name))
            best = latest.get(key)
            if best is None or (row.sample_time, row.report_time) > (
                best.sample_time,
                best.report_time,
            ):
                latest[key] = row

        def change(person: PersonState) -> dict[str, Any] | None:
            row = latest[person.person_key]
            if person.nat_sample_time is not None and (row.sample_time, row.report_time) <= (
                person.nat_sample_time,
                person.nat_report_time or person.nat_sample_time,
            ):
                return None  # an older test than the one the status shows
            return {
                "nat_result": row.result,
                "nat_sample_time": row.sample_time,
                "nat_report_time": row.report_time,
            }

        return people, change
