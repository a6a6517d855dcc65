"""The rules of a person's status: colours, the red of a positive test, versions, and a batch's
changes applied to thousands of persons at once."""

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.crypto import Sealer, keyed_hash
from hc_common.errors import NotFound
from hc_common.ids import new_id
from health_records.person.events import stage_status_changed, status_changed_rows
from health_records.person.models import CodeChange, Person
from health_records.person.repository import PersonRepository


def effective_color(authority_color: str, nat_result: str | None) -> str:
    """A positive latest NAT turns the code red by itself."""
    return "red" if nat_result == "positive" else authority_color


# --- Overlapping a statement with CPU work ----------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")
# CPU work of a batch: plain Python that yields after each slice of rows and returns its result.
# Synchronous, so it cannot await, so it cannot use the session.
Work = Generator[None, None, R]

# Rows a batch works on between two turns of the event loop (a few milliseconds): a statement
# the database runs meanwhile (a COPY) is held up by no more than that at each of its steps.
SLICE = 500


def finish(work: Work[R]) -> R:
    """`work` done at once (nothing to overlap it with)."""
    while True:
        try:
            next(work)
        except StopIteration as done:
            made: R = done.value
            return made


async def overlap(statement: Awaitable[T], work: Work[R]) -> tuple[T, R]:
    """Run `statement` (the session's database calls) while `work` is done here, a slice at a
    time: between two slices the event loop serves the statement (sends its rows, reads its
    answer), so the database works while this process does. Only `statement` awaits, so the
    session has one user at a time by construction. Returns both results; should `work` fail,
    the statement is let finish before the error leaves (the session is rolled back then)."""
    task = asyncio.ensure_future(statement)
    try:
        while True:
            await asyncio.sleep(0)
            try:
                next(work)
            except StopIteration as done:
                made: R = done.value
                break
    except BaseException:
        await asyncio.gather(task, return_exceptions=True)
        raise
    return await task, made


# --- A batch's view of persons ----------------------------------------------------------------

_STATUS_COLUMNS = (
    "person_key",
    "color",
    "nat_result",
    "nat_sample_time",
    "nat_report_time",
    "vaccine_doses",
    "last_dose_at",
    "version",
    "updated_at",
)
_NEW_COLUMNS = (*_STATUS_COLUMNS, "subject_id", "authority_color", "color_reason")
# A new person's row: its status columns, then the sealed ID number and name.
_NEW_NAMES = (*_NEW_COLUMNS, "id_number_enc", "name_enc")
_new_values = attrgetter(*_NEW_COLUMNS)


@dataclass(slots=True)
class PersonState:
    """A person's status columns as a batch reads and changes them (not an ORM object: a batch
    of 10,000 persons is plain rows)."""

    person_key: str
    subject_id: str
    authority_color: str
    color_reason: str | None
    color: str
    nat_result: str | None
    nat_sample_time: datetime | None
    nat_report_time: datetime | None
    vaccine_doses: int
    last_dose_at: datetime | None
    version: int
    updated_at: datetime
    name_missing: bool

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "PersonState":
        """A row of PersonRepository.lock_states."""
        return cls(*row)

    @classmethod
    def new(cls, person_key: str, subject_id: str, now: datetime) -> "PersonState":
        """A person nobody has reported on: green, no NAT, no vaccination."""
        return cls(
            person_key, subject_id, "green", None, "green", None, None, None, 0, None, 1, now, False
        )

    def apply(self, values: dict[str, Any], now: datetime) -> None:
        for column, value in values.items():
            setattr(self, column, value)
        self.color = effective_color(self.authority_color, self.nat_result)
        self.version += 1
        self.updated_at = now


# A batch's persons: person_key -> (ID number, name).
People = dict[str, tuple[str, str | None]]
# A batch's change of a person: the new values of their status columns, None for no change.
Change = Callable[[PersonState], dict[str, Any] | None]


@dataclass
class PersonService:
    session: AsyncSession
    sealer: Sealer
    pepper: bytes
    repo: PersonRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = PersonRepository(self.session)

    def person_key(self, id_number: str) -> str:
        return keyed_hash(self.pepper, "person:" + id_number)

    def person_key_function(self) -> Callable[[str], str]:
        """person_key for a batch: the same HMAC, its keyed state for the prefix made once."""
        base = hmac.new(self.pepper, b"person:", hashlib.sha256)

        def person_key(id_number: str) -> str:
            mac = base.copy()
            mac.update(id_number.encode())
            return mac.hexdigest()

        return person_key

    def person_keys(self, id_numbers: list[str]) -> Work[dict[str, str]]:
        """person_key of each ID number (each once), in slices."""
        person_key = self.person_key_function()
        keys: dict[str, str] = {}
        for start in range(0, len(id_numbers), SLICE):
            for id_number in id_numbers[start : start + SLICE]:
                if id_number not in keys:
                    keys[id_number] = person_key(id_number)
            yield
        return keys

    # --- One person ---------------------------------------------------------------------------

    async def subject_id(self, id_number: str, name: str | None) -> str:
        """The person's pseudonymous subject id (the person is created on first ask)."""
        return (await self._get_or_create(id_number, name)).subject_id

    async def by_subject(self, subject_id: str) -> Person:
        person = await self.repo.by_subject(subject_id)
        if person is None:
            raise NotFound()
        return person

    async def by_subjects(self, subject_ids: list[str]) -> list[Person]:
        """The persons of those subject ids that exist."""
        return await self.repo.by_subjects(subject_ids)

    async def set_color(self, id_number: str, color: str, reason: str) -> Person:
        """The authority's colour for the person (kept in the history), their status changed."""
        person = await self._get_or_create(id_number)
        person.authority_color = color
        person.color_reason = reason
        self.repo.add(
            CodeChange(
                id=new_id(),
                person_key=person.person_key,
                color=color,
                reason=reason,
                changed_at=utcnow(),
            )
        )
        person.color = effective_color(person.authority_color, person.nat_result)
        person.version += 1
        person.updated_at = utcnow()
        stage_status_changed(self.session, person)
        await self.session.flush()
        return person

    async def _get_or_create(self, id_number: str, name: str | None = None) -> Person:
        person = await self.repo.by_key(self.person_key(id_number), for_update=True)
        if person is not None:
            if name and person.name_enc is None:
                person.name_enc = self.sealer.seal(name.encode())
            return person
        person = Person(
            person_key=self.person_key(id_number),
            subject_id=new_id(),
            id_number_enc=self.sealer.seal(id_number.encode()),
            name_enc=self.sealer.seal(name.encode()) if name else None,
            color="green",
            authority_color="green",
            color_reason=None,
            nat_result=None,
            nat_sample_time=None,
            nat_report_time=None,
            vaccine_doses=0,
            last_dose_at=None,
            version=1,
            updated_at=utcnow(),
        )
        try:
            async with self.session.begin_nested():
                self.repo.add(person)
        except IntegrityError:  # created concurrently by another request
            found = await self.repo.by_key(self.person_key(id_number), for_update=True)
            assert found is not None
            return found
        return person

    # --- A batch ------------------------------------------------------------------------------

    async def lock(self, keys: list[str]) -> dict[str, PersonState]:
        """The persons found among `keys` (in key order), locked for this transaction: by key,
        their status as plain rows."""
        return {row[0]: PersonState.from_row(row) for row in await self.repo.lock_states(keys)}

    async def apply_batch(
        self,
        people: People,
        change: Change,
        alongside: Callable[[], Awaitable[bool]] | None = None,
        *,
        locked: dict[str, PersonState] | None = None,
    ) -> int | None:
        """Apply a batch's changes to the persons `people` in bulk.

        `change(state)` gives the new values of a person's status columns, or None when the
        batch does not change them; it must not modify `state`. Each changed person gets its
        colour recomputed, version + 1 and ONE status event. Unknown persons are created
        (green, nothing reported) with the change already applied, so a new person is one
        INSERT; known ones are locked (key order), read as plain rows and updated in one
        statement. A known person without a name gets the one given. Returns how many persons
        changed.

        `alongside` is a write of the caller's (the batch's own rows) that the database does
        once the persons are locked, while the new persons' rows are made and sealed here. When
        it returns False (it did not go as planned: a concurrent batch stored some of the rows
        meanwhile), nothing of the persons has been written and None is returned: the caller
        works the batch out again and calls without `alongside`.

        `locked`: the persons of `people` as lock() has just given them (else they are locked
        here)."""
        if not people:
            return None if alongside is not None and not await alongside() else 0
        now = utcnow()
        keys = sorted(people)
        found = await self.lock(keys) if locked is None else locked
        missing = [key for key in keys if key not in found]
        work = self._plan(missing, list(found.values()), people, change, now)
        if alongside is None:
            fresh, records, updated, named = finish(work)
        else:
            planned, (fresh, records, updated, named) = await overlap(alongside(), work)
            if not planned:
                return None
        changed = 0
        events: list[tuple[Any, ...]] = []
        if missing:
            # The database takes the new persons (a COPY on PostgreSQL) while their status
            # events are made here.
            fresh_changed = [s for s in fresh if s.version > 1]
            inserted, fresh_events = await overlap(
                self.repo.insert_new(_NEW_NAMES, records), _events(fresh_changed, now)
            )
            events += [
                event
                for state, event in zip(fresh_changed, fresh_events, strict=True)
                if state.person_key in inserted
            ]
            changed += sum(1 for s in fresh_changed if s.person_key in inserted)
            lost = [key for key in missing if key not in inserted]
            if lost:  # created meanwhile by a concurrent batch: now a known person
                more, more_named = finish(
                    self._changes(list((await self.lock(lost)).values()), people, change, now)
                )
                updated += more
                for column, values in more_named.items():
                    named[column] += values
        # The database updates the known persons while their status events are made here.
        columns = {column: [getattr(s, column) for s in updated] for column in _STATUS_COLUMNS}
        _, updated_events = await overlap(self.repo.update_columns(columns), _events(updated, now))
        await self.repo.update_columns(named)
        await self.repo.add_events(events + updated_events)
        return changed + len(updated)

    def _plan(
        self,
        missing: list[str],
        known: list[PersonState],
        people: People,
        change: Change,
        now: datetime,
    ) -> Work[
        tuple[list[PersonState], list[tuple[Any, ...]], list[PersonState], dict[str, list[Any]]]
    ]:
        """The batch's change applied to the persons of `missing` (made new) and to those
        `known`: _new_persons' and _changes' results."""
        fresh, records = yield from self._new_persons(missing, people, change, now)
        updated, named = yield from self._changes(known, people, change, now)
        return fresh, records, updated, named

    def _changes(
        self, states: list[PersonState], people: People, change: Change, now: datetime
    ) -> Work[tuple[list[PersonState], dict[str, list[Any]]]]:
        """The batch's change applied to known persons, in slices: those it changed, and the
        columns `person_key`, `name_enc` of those who get a name now (the one given, sealed)."""
        updated: list[PersonState] = []
        unnamed: list[tuple[str, str]] = []
        for start in range(0, len(states), SLICE):
            for state in states[start : start + SLICE]:
                values = change(state)
                if values is not None:
                    state.apply(values, now)
                    updated.append(state)
                name = people[state.person_key][1]
                if name and state.name_missing:
                    unnamed.append((state.person_key, name))
            yield
        return updated, {
            "person_key": [key for key, _ in unnamed],
            "name_enc": self.sealer.seal_many([name.encode() for _, name in unnamed]),
        }

    def _new_persons(
        self, keys: list[str], people: People, change: Change, now: datetime
    ) -> Work[tuple[list[PersonState], list[tuple[Any, ...]]]]:
        """The new persons of `keys`, the change applied, and their rows of _NEW_NAMES (ID
        number and name sealed), in slices."""
        seal_many = self.sealer.seal_many
        fresh: list[PersonState] = []
        records: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), SLICE):
            part = [PersonState.new(key, new_id(), now) for key in keys[start : start + SLICE]]
            for state in part:
                values = change(state)
                if values is not None:
                    state.apply(values, now)
            given = [people[state.person_key] for state in part]
            numbers = seal_many([id_number.encode() for id_number, _ in given])
            names = iter(seal_many([name.encode() for _, name in given if name]))
            records += [
                (*_new_values(state), number, next(names) if name else None)
                for state, number, (_, name) in zip(part, numbers, given, strict=True)
            ]
            fresh += part
            yield
        return fresh, records


def _events(states: list[PersonState], now: datetime) -> Work[list[tuple[Any, ...]]]:
    """The outbox rows of the states' status events, in slices."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(states), SLICE):
        rows += status_changed_rows(states[start : start + SLICE], now)
        yield
    return rows
