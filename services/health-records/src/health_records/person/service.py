"""The rules of a person's status: colours, the red of a positive test, versions, events."""

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.crypto import Sealer, keyed_hash
from hc_common.events import envelope as subjects
from hc_common.events.outbox import add_event
from hc_common.ids import new_id
from hc_common.masking import mask_id_number
from health_records.batch import new_ids
from health_records.db import OutboxEvent
from health_records.dialect import append_rows
from health_records.person.models import CodeChange, Person
from health_records.person.repository import PersonRepository
from health_records.person.schemas import Nat, Status, Vaccination


def effective_color(authority_color: str, nat_result: str | None) -> str:
    """A positive latest NAT turns the code red by itself."""
    return "red" if nat_result == "positive" else authority_color


def status_of(person: Person, id_number: str | None = None) -> Status:
    nat = None
    if person.nat_result and person.nat_sample_time:
        nat = Nat(
            result=person.nat_result,
            sample_time=person.nat_sample_time,
            report_time=person.nat_report_time,
        )
    vaccination = None
    if person.vaccine_doses:
        vaccination = Vaccination(doses=person.vaccine_doses, last_dose_at=person.last_dose_at)
    return Status(
        subject_id=person.subject_id,
        color=person.color,  # type: ignore[arg-type]
        color_reason=person.color_reason,
        nat=nat,
        vaccination=vaccination,
        version=person.version,
        updated_at=person.updated_at,
        masked_id_number=mask_id_number(id_number) if id_number else None,
    )


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


# Rows a batch works on between two turns of the event loop (a few milliseconds): a statement
# the database runs meanwhile (a COPY) is held up by no more than that at each of its steps.
SLICE = 500


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

    def event_data(self) -> dict[str, Any]:
        """The status event's data: what status_of(person).model_dump(mode="json") gives
        (times as UTC datetimes; add_events_bulk writes them as the contract does)."""
        nat = None
        if self.nat_result and self.nat_sample_time:
            nat = {
                "result": self.nat_result,
                "sample_time": self.nat_sample_time,
                "report_time": self.nat_report_time,
            }
        vaccination = None
        if self.vaccine_doses:
            vaccination = {"doses": self.vaccine_doses, "last_dose_at": self.last_dose_at}
        return {
            "subject_id": self.subject_id,
            "masked_id_number": None,
            "color": self.color,
            "color_reason": self.color_reason,
            "nat": nat,
            "vaccination": vaccination,
            "version": self.version,
            "updated_at": self.updated_at,
        }


@dataclass
class PersonService:
    session: AsyncSession
    sealer: Sealer
    pepper: bytes

    @property
    def repo(self) -> PersonRepository:
        return PersonRepository(self.session)

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

    async def person_keys(self, id_numbers: list[str], slice_size: int = SLICE) -> dict[str, str]:
        """person_key of each ID number (each once), worked out in slices, the event loop given
        back between them (to a statement the database runs meanwhile)."""
        person_key = self.person_key_function()
        keys: dict[str, str] = {}
        for start in range(0, len(id_numbers), slice_size):
            await asyncio.sleep(0)
            for id_number in id_numbers[start : start + slice_size]:
                if id_number not in keys:
                    keys[id_number] = person_key(id_number)
        return keys

    def new_person(self, id_number: str, name: str | None, now: datetime) -> Person:
        """A person nobody has reported on: green, no NAT, no vaccination."""
        return Person(
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
            updated_at=now,
        )

    async def get_or_create(self, id_number: str, name: str | None = None) -> Person:
        person = await self.repo.by_key(self.person_key(id_number), for_update=True)
        if person is not None:
            if name and person.name_enc is None:
                person.name_enc = self.sealer.seal(name.encode())
            return person
        person = self.new_person(id_number, name, utcnow())
        try:
            async with self.session.begin_nested():
                self.repo.add(person)
        except IntegrityError:  # created concurrently by another request
            found = await self.repo.by_key(self.person_key(id_number), for_update=True)
            assert found is not None
            return found
        return person

    def touch(self, person: Person) -> None:
        """Record a status change: new colour, next version, an event in the same transaction."""
        person.color = effective_color(person.authority_color, person.nat_result)
        person.version += 1
        person.updated_at = utcnow()
        add_event(
            self.session,
            OutboxEvent,
            subjects.STATUS_CHANGED,
            status_of(person).model_dump(mode="json"),
        )

    async def set_color(self, id_number: str, color: str, reason: str) -> Person:
        person = await self.get_or_create(id_number)
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
        self.touch(person)
        await self.session.flush()
        return person

    async def apply_batch(
        self,
        people: dict[str, tuple[str, str | None]],
        change: Callable[[PersonState], dict[str, Any] | None],
        alongside: Callable[[], Awaitable[bool]] | None = None,
        *,
        locked: dict[str, PersonState] | None = None,
    ) -> int | None:
        """Apply a batch's changes to the persons `person_key -> (id_number, name)` in bulk.

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
        task = asyncio.ensure_future(alongside()) if alongside is not None else None
        try:
            fresh, records = await self._new_persons(missing, people, change, now)
            updated, named = await self._changes(list(found.values()), people, change, now)
        finally:
            planned = await task if task is not None else True
        if not planned:
            return None
        changed = 0
        events: list[tuple[Any, ...]] = []
        if missing:
            # The database takes the new persons (a COPY on PostgreSQL) while their status
            # events are made here, in slices that give the COPY the event loop in between.
            insert = asyncio.ensure_future(self.repo.insert_new(_NEW_NAMES, records))
            try:
                fresh_changed = [s for s in fresh if s.version > 1]
                fresh_events = await status_event_records(fresh_changed)
            finally:
                inserted = await insert
            events += [
                event
                for state, event in zip(fresh_changed, fresh_events, strict=True)
                if state.person_key in inserted
            ]
            changed += sum(1 for s in fresh_changed if s.person_key in inserted)
            lost = [key for key in missing if key not in inserted]
            if lost:  # created meanwhile by a concurrent batch: now a known person
                more, more_named = await self._changes(
                    [PersonState.from_row(row) for row in await self.repo.lock_states(lost)],
                    people,
                    change,
                    now,
                )
                updated += more
                for column, values in more_named.items():
                    named[column] += values
        # The database updates the known persons while their status events are made here.
        update = asyncio.ensure_future(
            self.repo.update_columns(
                {column: [getattr(s, column) for s in updated] for column in _STATUS_COLUMNS}
            )
        )
        try:
            events += await status_event_records(updated)
        finally:
            await update
        await self.repo.update_columns(named)
        await append_rows(self.session, OutboxEvent.__table__, _OUTBOX_COLUMNS, events)
        return changed + len(updated)

    async def lock(self, keys: list[str]) -> dict[str, PersonState]:
        """The persons found among `keys` (in key order), locked for this transaction: by key,
        their status as plain rows."""
        return {row[0]: PersonState.from_row(row) for row in await self.repo.lock_states(keys)}

    async def _changes(
        self,
        states: list[PersonState],
        people: dict[str, tuple[str, str | None]],
        change: Callable[[PersonState], dict[str, Any] | None],
        now: datetime,
        slice_size: int = SLICE,
    ) -> tuple[list[PersonState], dict[str, list[Any]]]:
        """The batch's change applied to known persons, in slices (the event loop given back
        between them): those it changed, and the columns `person_key`, `name_enc` of those who
        get a name now (the one given, sealed)."""
        updated: list[PersonState] = []
        unnamed: list[tuple[str, str]] = []
        for start in range(0, len(states), slice_size):
            await asyncio.sleep(0)
            for state in states[start : start + slice_size]:
                values = change(state)
                if values is not None:
                    state.apply(values, now)
                    updated.append(state)
                name = people[state.person_key][1]
                if name and state.name_missing:
                    unnamed.append((state.person_key, name))
        return updated, {
            "person_key": [key for key, _ in unnamed],
            "name_enc": self.sealer.seal_many([name.encode() for _, name in unnamed]),
        }

    async def _new_persons(
        self,
        keys: list[str],
        people: dict[str, tuple[str, str | None]],
        change: Callable[[PersonState], dict[str, Any] | None],
        now: datetime,
        slice_size: int = SLICE,
    ) -> tuple[list[PersonState], list[tuple[Any, ...]]]:
        """The new persons of `keys`, the change applied, and their rows of _NEW_NAMES (ID
        number and name sealed), made in slices, the event loop given back between them."""
        seal_many = self.sealer.seal_many
        fresh: list[PersonState] = []
        records: list[tuple[Any, ...]] = []
        subject_ids = new_ids(len(keys))
        for start in range(0, len(keys), slice_size):
            await asyncio.sleep(0)
            part = [
                PersonState.new(key, subject_id, now)
                for key, subject_id in zip(
                    keys[start : start + slice_size],
                    subject_ids[start : start + slice_size],
                    strict=True,
                )
            ]
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
        return fresh, records


_OUTBOX_COLUMNS = ("event_id", "subject", "payload", "created_at")


async def status_event_records(
    states: list[PersonState], slice_size: int = SLICE
) -> list[tuple[Any, ...]]:
    """The outbox rows (_OUTBOX_COLUMNS) of the states' status events: the envelopes
    add_events_bulk writes ({id, type, occurred_at, data}, orjson, times in `data` as
    `2026-11-27T08:00:00Z`). Made in slices, the event loop given back between them."""
    subject = subjects.STATUS_CHANGED
    now = utcnow()
    occurred_at = now.isoformat().replace("+00:00", "Z")  # as Envelope.to_bytes writes it
    option = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
    dumps = orjson.dumps
    ids = new_ids(len(states))
    records: list[tuple[Any, ...]] = []
    for start in range(0, len(states), slice_size):
        await asyncio.sleep(0)
        records += [
            (
                event_id,
                subject,
                dumps(
                    {
                        "id": event_id,
                        "type": subject,
                        "occurred_at": occurred_at,
                        "data": state.event_data(),
                    },
                    option=option,
                ),
                now,
            )
            for event_id, state in zip(
                ids[start : start + slice_size], states[start : start + slice_size], strict=True
            )
        ]
    return records
