"""The rules of a lab's batch: idempotent by report id, the latest result by sample time
becomes the person's NAT status (and a positive one turns the code red), a result under a name
that is not the person's is refused."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from health_records.nat.repository import NatResultRepository
from health_records.nat.schemas import NatRow
from health_records.person.service import (
    Change,
    Ingested,
    People,
    PersonService,
    PersonState,
    Work,
    finish,
    overlap,
    taken_back,
)

R = TypeVar("R")

# A batch's rows as mismatched() reads them: (person key, name key), in the order sent.
Named = list[tuple[str, str]]

# Report ids of a batch looked up before it is stored as if all were new.
_SAMPLE = 16
# Persons of a batch looked up before they are created as if all were new (more than report
# ids: a lab's batch mixes new persons with known ones, and a wrong guess costs a write).
_PERSON_SAMPLE = 64


@dataclass
class NatService:
    session: AsyncSession
    persons: PersonService
    repo: NatResultRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = NatResultRepository(self.session)

    async def ingest(self, rows: list[NatRow], indexes: Sequence[int]) -> Ingested:
        """Store the new rows and update the persons they change. A report id seen before, in
        an earlier batch or earlier in this one, is a duplicate and changes nothing (it creates
        no person either). A new row whose name is not the person's (PersonService.mismatched)
        is refused: its index (of `indexes`, the rows' places in the batch) is listed.

        A lab sends a report once, so the batch is first worked out as if none of its report
        ids were known, and its results stored all or none: that spares the look-up of the
        report ids. Should one be known, nothing has been written, and the batch is worked out
        again knowing which (at once when one of a few report ids looked up first is known:
        a batch sent again)."""
        if not rows:
            return Ingested(0, 0, [])
        # A few of its report ids and persons are looked up while its person keys are worked
        # out here: a batch sent again (all duplicates) is told at once, without the attempt, and
        # one of new persons only is stored without looking up and locking its persons.
        sample = [row.report_id for row in rows[:: max(1, len(rows) // _SAMPLE)]]
        person_key = self.persons.person_key
        person_sample = [
            person_key(row.id_number) for row in rows[:: max(1, len(rows) // _PERSON_SAMPLE)]
        ]

        async def sampled() -> tuple[set[str], set[str]]:
            return await self.repo.known(sample), await self.persons.repo.known(person_sample)

        # The person keys first: with them the persons can be locked while the rest of the
        # batch is made ready (_Ready, finished by whoever needs it first).
        (seen, persons_seen), key_of = await overlap(
            sampled(), self.persons.person_keys([row.id_number for row in rows])
        )
        ready = _Later(self._ready(rows, indexes))
        done: Ingested | None = None
        # Whether the all-or-none attempt is known to fail: a report id known already.
        clash = bool(seen)
        if not clash and not persons_seen:
            done, clash = await self._create(len(rows), ready.value(), key_of)
        if done is None and not clash:
            done = await self._ingest(len(rows), ready, key_of, None)
        if done is None:
            batch = ready.value()
            known = await self.repo.known([row.report_id for row in batch.ordered])
            ordered = [row for row in batch.ordered if row.report_id not in known]
            if not ordered:
                return Ingested(0, len(rows), [])
            batch = _Ready(batch.unique, ordered, batch.name_key_of)
            done = await self._ingest(len(rows), _Later(None, batch), key_of, known)
            assert done is not None, "a batch that knows its duplicates is stored"
        return done

    def _ready(self, rows: list[NatRow], indexes: Sequence[int]) -> Work["_Ready"]:
        """The batch made ready (_Ready), in slices."""
        unique: dict[str, tuple[int, NatRow]] = {}
        for index, row in zip(indexes, rows, strict=True):
            if row.report_id not in unique:
                unique[row.report_id] = (index, row)
        yield
        # Report-id order: two batches sharing report ids take their locks in the same order.
        ordered = [unique[report_id][1] for report_id in sorted(unique)]
        yield
        name_key_of = yield from self.persons.name_keys(row.name for row in ordered)
        return _Ready(unique, ordered, name_key_of)

    async def _create(
        self, count: int, batch: "_Ready", key_of: dict[str, str]
    ) -> tuple[Ingested | None, bool]:
        """The batch of `count` rows stored as one of new reports of new persons only
        (PersonService.create_batch): nothing to look up or lock. (None, whether the batch
        must go the way of known duplicates) when it is not that, with nothing written: a row
        refused for its name (which may be a duplicate, counted as one: the all-or-none
        attempt would refuse it too, as a person's two names clash whoever is on file), a
        person who exists, or a known report id."""
        name_key_of = batch.name_key_of
        named = [(key_of[row.id_number], name_key_of[row.name]) for _, row in batch.unique.values()]
        if self.persons.mismatched(named, {}):
            return None, True
        records, (people, change) = finish(self._records(batch.ordered, key_of, utcnow()))
        clash = False

        async def store() -> bool:
            """The results, inside create_batch's savepoint (rolled back when one is known)."""
            nonlocal clash
            stored = await self.repo.insert_new(
                records, checked=True, whole=True, own_savepoint=False
            )
            clash = stored is None
            return not clash

        if await self.persons.create_batch(people, change, store) is None:
            return None, clash
        return Ingested(len(records), count - len(records), []), False

    async def _ingest(
        self, count: int, ready: "_Later[_Ready]", key_of: dict[str, str], known: set[str] | None
    ) -> Ingested | None:
        """The batch of `count` rows stored: the rows of `ready`'s batch (`ordered`, in
        report-id order; `unique`: the first row of each report id, with its index), those
        of `known` report ids left out. With `known` None, every report id is taken for new
        and the results are stored all or none: None when one was known (nothing written
        then). The persons are locked while `ready` is finished and the results' rows made."""
        now = utcnow()
        whole = known is None
        if whole:  # every row's person (`ready`'s rows: the persons of the batch and more)
            keys = list(set(key_of.values()))
        else:  # the persons of the rows left
            keys = list({key_of[row.id_number] for row in ready.value().ordered})

        def prepare() -> Work[
            tuple[_Ready, list[tuple[Any, ...]], tuple[People, Change], list[Any], Named]
        ]:
            """The batch, the results' rows and the plan (_records), the rows sent (the
            first of each report id, with its index, known ones left out), and their
            (person key, name key) in the order sent, for mismatched: the first row names a
            person who has no name yet."""
            batch = yield from ready.steps()
            records, plan = yield from self._records(batch.ordered, key_of, now)
            sent = [
                pair
                for pair in batch.unique.values()
                if known is None or pair[1].report_id not in known
            ]
            names = batch.name_key_of
            named = [(key_of[row.id_number], names[row.name]) for _, row in sent]
            return batch, records, plan, sent, named

        # The database locks the persons while the rest of the batch is made ready here.
        locked, (batch, records, (people, change), sent, named) = await overlap(
            self.persons.lock(keys), prepare()
        )
        unique, ordered = batch.unique, batch.ordered
        if len(locked) > len(people):  # persons of duplicate rows only: not the batch's
            locked = {key: state for key, state in locked.items() if key in people}
        mismatched = self.persons.mismatched(named, locked)
        refused = [sent[at][0] for at in mismatched]
        if refused:
            if whole:  # a refused row may be a duplicate (counted as one): known ones first
                return None
            out = {sent[at][1].report_id for at in mismatched}
            ordered = [row for row in ordered if row.report_id not in out]
            if not ordered:
                return Ingested(0, count - len(refused), sorted(refused))
            records, (people, change) = finish(self._records(ordered, key_of, now))
            locked = {key: state for key, state in locked.items() if key in people}
        inserted: set[str] = set()

        async def store() -> bool:
            """The results, stored while the persons' rows are made: False when some were
            stored before (all or none stored then), or by a concurrent batch meanwhile (they
            are duplicates then)."""
            nonlocal inserted
            stored = await self.repo.insert_new(records, checked=True, whole=whole)
            inserted = stored or set()
            return len(inserted) == len(records)

        # The rows that are not known are planned as stored; should some turn out stored
        # meanwhile, the plan is made again from those that were.
        taken: set[str] = set()
        if (
            await self.persons.apply_batch(people, change, store, locked=locked, refused=taken)
            is None
        ):
            if whole:  # nothing written: the batch again, knowing its duplicates
                return None
            await self.persons.apply_batch(
                *self._plan([row for row in ordered if row.report_id in inserted], key_of),
                refused=taken,
            )
        if taken:  # persons created meanwhile under another name: their results taken back
            back = taken_back(
                ((row.report_id, key_of[row.id_number]) for row in ordered), inserted, taken
            )
            await self.repo.delete(back)
            inserted.difference_update(back)
            refused += [unique[report_id][0] for report_id in back]
        return Ingested(len(inserted), count - len(inserted) - len(refused), sorted(refused))

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


@dataclass(frozen=True, slots=True)
class _Ready:
    """A batch made ready: the first row of each report id with its index (in the order
    sent), those rows in report-id order, and the name keys (by name)."""

    unique: dict[str, tuple[int, NatRow]]
    ordered: list[NatRow]
    name_key_of: dict[str, str]


class _Later(Generic[R]):
    """Work finished by whoever needs its result first: a slice at a time (steps(), while a
    statement runs), or at once (value())."""

    def __init__(self, work: Work[R] | None, value: R | None = None) -> None:
        """`work` to do, or None and its `value`, done already."""
        self._work = work
        self._value = value

    def steps(self) -> Work[R]:
        if self._work is not None:
            self._value = yield from self._work
            self._work = None
        assert self._value is not None
        return self._value

    def value(self) -> R:
        return finish(self.steps())
