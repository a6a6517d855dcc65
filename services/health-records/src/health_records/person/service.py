"""The rules of a person's status: colours, the red of a positive test, versions, and a batch's
changes applied to thousands of persons at once."""

import asyncio
import gc
import hashlib
import unicodedata
from collections.abc import (
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.crypto import Sealer, keyed_hash
from hc_common.errors import DomainError, NotFound, register_messages
from hc_common.events.outbox import group_events
from hc_common.ids import batch_ids, new_id, new_ids
from health_records.person.events import stage_status_changed, status_changed_rows
from health_records.person.models import CodeChange, Person
from health_records.person.repository import PersonRepository, savepoint

NAME_MISMATCH = "name_mismatch"
register_messages(
    {
        NAME_MISMATCH: (
            "姓名与身份证号码登记的姓名不一致",
            "The name differs from the one on file for this ID number",
        )
    }
)


class NameMismatch(DomainError):
    """The name given is not the one on file for the ID number (a mistyped ID number must not
    give one person another's results)."""

    status, code = 422, NAME_MISMATCH


def normalise_name(name: str) -> str:
    """A name as names are compared: Unicode NFKC (full-width and half-width forms are the
    same letters), surrounding spaces stripped."""
    return unicodedata.normalize("NFKC", name).strip()


class _Collector:
    """The cyclic garbage collector paused while batches run (reference counting still frees
    what a batch drops). A batch makes a few hundred thousand objects that live until it ends;
    each of the collector's full passes it sets off would walk them all, for nothing: a batch
    makes no cycles. Nested and concurrent batches share one pause; the collector is left as it
    was found."""

    def __init__(self) -> None:
        self.holders = 0
        self.was_enabled = False

    def __enter__(self) -> None:
        if self.holders == 0:
            self.was_enabled = gc.isenabled()
            gc.disable()
        self.holders += 1

    def __exit__(self, *_: object) -> None:
        self.holders -= 1
        if self.holders == 0 and self.was_enabled:
            gc.enable()


# `with collector_paused:` around a batch's work.
collector_paused = _Collector()


def taken_back(
    row_ids: Iterable[tuple[str, str]], inserted: set[str], taken: set[str]
) -> list[str]:
    """The ids of a batch's stored rows whose person (key) was `taken` by apply_batch's
    `refused`: created meanwhile by a concurrent request under another name, so the rows must
    be deleted again and refused as `name_mismatch`. `row_ids` are (row id, person key) in the
    batch's order."""
    return [row_id for row_id, key in row_ids if row_id in inserted and key in taken]


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


def _step(work: Work[Any]) -> bool:
    """One slice of `work`: True once it is done."""
    try:
        next(work)
    except StopIteration:
        return True
    return False


async def meanwhile(statement: Awaitable[T], work: Work[Any]) -> tuple[T, bool]:
    """Run `statement` while slices of `work` are done here, as overlap() does, but only until
    the statement is done: the rest of `work` is left to the caller. Returns the statement's
    result and whether `work` is done."""
    task = asyncio.ensure_future(statement)
    finished = False
    try:
        while not task.done() and not finished:
            await asyncio.sleep(0)
            finished = _step(work)
    except BaseException:
        await asyncio.gather(task, return_exceptions=True)
        raise
    return await task, finished


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


class NewPerson(NamedTuple):
    """A new person's row as a batch inserts it (the tuple, in this column order), and their
    status as their event reads it (the attributes)."""

    person_key: str
    color: str
    nat_result: str | None
    nat_sample_time: datetime | None
    nat_report_time: datetime | None
    vaccine_doses: int
    last_dose_at: datetime | None
    version: int
    updated_at: datetime
    subject_id: str
    authority_color: str
    color_reason: str | None
    id_number_enc: bytes
    name_enc: bytes | None
    name_key: str | None


# The status columns of a person nobody has reported on (as a change gives them new values).
_status_values = attrgetter(*_STATUS_COLUMNS)
_NEW_STATUS: dict[str, Any] = {
    "authority_color": "green",
    "color_reason": None,
    "nat_result": None,
    "nat_sample_time": None,
    "nat_report_time": None,
    "vaccine_doses": 0,
    "last_dose_at": None,
}


# PersonState.updated_at of a person whose status time was not read.
NOT_READ = datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class PersonState:
    """A person's status columns as a batch reads and changes them (not an ORM object: a batch
    of 10,000 persons is plain rows), and what the batch knows of their name."""

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
    # The key of the name on file (None: no name, or one named before keys were kept).
    name_key: str | None = None
    # The sealed name of a person named before keys were kept (else None).
    legacy_name: bytes | None = None
    name_missing: bool = False
    # When the status last changed: set by the batch that changes it (lock() does not read
    # it: nothing reads the time of a status the batch leaves as it is, and a fifth of the
    # time asyncpg takes to decode a batch's states was this timestamp's).
    updated_at: datetime = NOT_READ

    @classmethod
    def new(cls, person_key: str, subject_id: str, now: datetime) -> "PersonState":
        """A person nobody has reported on: green, no NAT, no vaccination."""
        return cls(
            person_key, subject_id, "green", None, "green", None, None, None, 0, None, 1,
            updated_at=now,
        )  # fmt: skip

    def apply(self, values: dict[str, Any], now: datetime) -> None:
        for column, value in values.items():
            setattr(self, column, value)
        self.color = effective_color(self.authority_color, self.nat_result)
        self.version += 1
        self.updated_at = now


class _Undo(Exception):
    """Leaves a savepoint's block, rolling it back."""


class Ingested(NamedTuple):
    """What a batch did: how many rows it stored, how many were duplicates, and the indexes
    (places in the batch) of the rows refused as `name_mismatch`."""

    accepted: int
    duplicates: int
    refused: list[int]


# A batch's persons: person_key -> (ID number, name); as apply_batch reads them.
People = dict[str, tuple[str, str | None]]
PeopleView = Mapping[str, tuple[str, str | None]]
# A batch's change of a person: the new values of their status columns, None for no change.
Change = Callable[[PersonState], dict[str, Any] | None]


@dataclass
class PersonService:
    session: AsyncSession
    sealer: Sealer
    pepper: bytes
    repo: PersonRepository = field(init=False)
    # The names' keys this service has worked out (one batch's names repeat).
    _name_keys: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.repo = PersonRepository(self.session)

    def person_key(self, id_number: str) -> str:
        return keyed_hash(self.pepper, "person:" + id_number)

    def person_key_function(self) -> Callable[[str], str]:
        """person_key for a batch: the same HMAC-SHA256 (RFC 2104), its inner and outer states
        for the key and the prefix made once, so that a number costs two hash copies."""
        key = self.pepper if len(self.pepper) <= 64 else hashlib.sha256(self.pepper).digest()
        key = key.ljust(64, b"\0")
        inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        inner.update(b"person:")
        outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

        def person_key(id_number: str) -> str:
            mac = inner.copy()
            mac.update(id_number.encode())
            done = outer.copy()
            done.update(mac.digest())
            return done.hexdigest()

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

    def batch_keys(
        self, id_numbers: list[str], names: list[str]
    ) -> Work[tuple[dict[str, str], dict[str, str]]]:
        """A batch's person keys (by ID number) and name keys (by name), in slices."""
        person_keys = yield from self.person_keys(id_numbers)
        name_keys = yield from self.name_keys(names)
        return person_keys, name_keys

    def name_key(self, name: str) -> str:
        """The key a name is compared by: an HMAC (the pepper, a prefix of its own) of the
        normalised name, so that names are compared without opening the sealed ones."""
        found = self._name_keys.get(name)
        if found is None:
            found = self._name_keys[name] = keyed_hash(self.pepper, "name:" + normalise_name(name))
        return found

    def name_keys(self, names: Iterable[str]) -> Work[dict[str, str]]:
        """name_key of each name (each once), in slices."""
        name_key = self.name_key
        keys: dict[str, str] = {}
        for at, name in enumerate(names, 1):
            if name not in keys:
                keys[name] = name_key(name)
            if at % SLICE == 0:
                yield
        return keys

    def _key_on_file(self, state: PersonState) -> str | None:
        """The key of the person's name on file; for one named before keys were kept, the
        sealed name opened (rare) and its key kept to be written with the batch."""
        if state.name_key is None and state.legacy_name is not None:
            state.name_key = self.name_key(self.sealer.open(state.legacy_name).decode())
        return state.name_key

    def mismatched(self, named: list[tuple[str, str]], found: dict[str, PersonState]) -> list[int]:
        """The positions in `named` (a batch's rows in the order sent, as (person key, name
        key)) whose name is not the person's: the name on file, or for a person without one
        (new, or known unnamed) the name of the person's first row in the batch."""
        # The names on file first; a person without one gets the name of their first row.
        expected = {
            key: on_file
            for key, state in found.items()
            if (on_file := self._key_on_file(state)) is not None
        }
        want = expected.setdefault
        return [
            at
            for at, (person_key, name_key) in enumerate(named)
            if want(person_key, name_key) != name_key
        ]

    # --- One person ---------------------------------------------------------------------------

    async def subject_id(self, id_number: str, name: str | None) -> str:
        """The person's pseudonymous subject id (the person is created on first ask). A name
        that is not the one on file is refused (NameMismatch); a person without one gets it."""
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
        if person is None:
            person = Person(
                person_key=self.person_key(id_number),
                subject_id=new_id(),
                id_number_enc=self.sealer.seal(id_number.encode()),
                name_enc=self.sealer.seal(name.encode()) if name else None,
                name_key=self.name_key(name) if name else None,
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
                return person
            except IntegrityError:  # created concurrently by another request: checked below
                found = await self.repo.by_key(self.person_key(id_number), for_update=True)
                assert found is not None
                person = found
        if name:
            self._check_name(person, name)
        return person

    def _check_name(self, person: Person, name: str) -> None:
        """The person gets the name when they have none; a name that is not theirs is refused.
        The key of a name given before keys were kept is written now."""
        key = self.name_key(name)
        if person.name_enc is None:
            person.name_enc = self.sealer.seal(name.encode())
            person.name_key = key
            return
        if person.name_key is None:
            person.name_key = self.name_key(self.sealer.open(person.name_enc).decode())
        if person.name_key != key:
            raise NameMismatch(
                detail="姓名与该身份证号码登记的姓名不一致，请核对身份证号码和姓名",
                detail_en="The name differs from the one on file for this ID number: check "
                "the ID number and the name",
            )

    # --- A batch ------------------------------------------------------------------------------

    async def lock(self, keys: list[str]) -> dict[str, PersonState]:
        """The persons found among `keys` (in any order), locked for this transaction in key
        order (the database sorts them: two batches sharing persons lock them in the same
        order): by key, in key order, their status as plain rows."""
        # A row of lock_states is a PersonState's fields, in order.
        return {row[0]: PersonState(*row) for row in await self.repo.lock_states(keys)}

    async def apply_batch(
        self,
        people: PeopleView,
        change: Change,
        alongside: Callable[[], Awaitable[bool]] | None = None,
        *,
        locked: dict[str, PersonState] | None = None,
        refused: set[str] | None = None,
    ) -> int | None:
        """Apply a batch's changes to the persons `people` in bulk.

        `change(state)` gives the new values of a person's status columns, or None when the
        batch does not change them; it must not modify `state`. Each changed person gets its
        colour recomputed, version + 1 and ONE status event. Unknown persons are created
        (green, nothing reported) with the change already applied, so a new person is one
        INSERT; known ones are locked (key order), read as plain rows and updated in one
        statement. A known person without a name gets the one given (and its key); one named
        before keys were kept gets the key of their name. The caller has left out the rows
        whose name is not the person's (mismatched()). Returns how many persons changed.

        `alongside` is a write of the caller's (the batch's own rows) that the database does
        once the persons are locked, while the new persons' rows are made and sealed here. When
        it returns False (it did not go as planned: a concurrent batch stored some of the rows
        meanwhile), nothing of the persons has been written and None is returned: the caller
        works the batch out again and calls without `alongside`.

        `locked`: the persons of `people` as lock() has just given them (else they are locked
        here). `refused`: where a person this batch would create was created meanwhile by a
        concurrent request under another name, their key is added to it and the batch does
        not change them (the caller takes their rows back)."""
        if not people:
            return None if alongside is not None and not await alongside() else 0
        # Whole seconds, as the API and the events show a status's time (nothing to round at
        # each of the batch's events).
        now = utcnow().replace(microsecond=0)
        found = await self.lock(list(people)) if locked is None else locked
        # Key order: two batches creating the same persons wait for each other in one order.
        missing = sorted(key for key in people if key not in found)
        work = self._plan(missing, list(found.values()), people, change, now)
        if alongside is None:
            fresh, updated, named = finish(work)
        else:
            planned, (fresh, updated, named) = await overlap(alongside(), work)
            if not planned:
                return None
        changed = 0
        events: list[tuple[Any, ...]] = []
        if missing:
            # The database takes the new persons (a COPY on PostgreSQL) while their status
            # events are made here.
            fresh_changed = [s for s in fresh if s.version > 1]
            inserted, fresh_events = await overlap(
                self.repo.insert_new(NewPerson._fields, fresh), _events(fresh_changed, now)
            )
            if len(inserted) < len(fresh):
                events += [
                    event
                    for state, event in zip(fresh_changed, fresh_events, strict=True)
                    if state.person_key in inserted
                ]
                changed += sum(1 for s in fresh_changed if s.person_key in inserted)
            else:
                events += fresh_events
                changed += len(fresh_changed)
            lost = [key for key in missing if key not in inserted]
            if lost:  # created meanwhile by a concurrent request: now a known person
                states = list((await self.lock(lost)).values())
                if refused is not None:
                    taken = {
                        s.person_key
                        for s in states
                        if (on_file := self._key_on_file(s)) is not None
                        and on_file != self.name_key(people[s.person_key][1] or "")
                    }
                    refused |= taken
                    states = [s for s in states if s.person_key not in taken]
                more, more_named = finish(self._changes(states, people, change, now))
                updated += more
                for column, values in more_named.items():
                    named[column] += values
        # The database updates the known persons while their status events are made here,
        # and grouped into outbox rows.
        rows = list(map(_status_values, updated))
        _, outbox_rows = await overlap(
            self.repo.update_rows(_STATUS_COLUMNS, rows), _outbox_rows(events, updated, now)
        )
        await self.repo.update_columns(named)
        await self.repo.add_outbox_rows(outbox_rows)
        return changed + len(updated)

    async def create_batch(
        self, people: PeopleView, change: Change, alongside: Callable[[], Awaitable[bool]]
    ) -> int | None:
        """apply_batch for a batch whose persons are all new, without its look-up and locks:
        `alongside` (the batch's own rows) is written while the persons' rows are made here,
        then the persons are inserted, their rows sent as they are made and their status
        events made with them. Returns how many persons changed.

        All or nothing: None, with nothing written, when `alongside` returns False or when one
        of the persons exists (or is being created by a concurrent transaction: the unique key
        waits for it, then fails). The caller then goes apply_batch's way. The order of the
        writes is apply_batch's (the batch's rows, then the persons), so that two batches
        sharing rows and persons wait for each other in one order. `alongside` runs inside
        this method's savepoint: a write of its that fails may leave the transaction in error
        when it returns False (the savepoint is rolled back then)."""
        now = utcnow().replace(microsecond=0)
        keys = sorted(people)
        rows: list[NewPerson] = []
        work = self._new_persons(keys, people, change, now, rows)
        events: list[tuple[Any, ...]] = []
        event_ids = iter(batch_ids(len(keys)))

        def stream() -> Iterator[NewPerson]:
            """The persons' rows as the work makes them (those made while `alongside` ran,
            then a slice at a time), each slice's status events made after it is sent."""
            sent, finished = 0, False
            while True:
                part = rows[sent:]
                sent = len(rows)
                yield from part
                changed = [row for row in part if row.version > 1]
                events.extend(status_changed_rows(changed, now, islice(event_ids, len(changed))))
                if finished:
                    return
                finished = _step(work)

        try:
            async with savepoint(self.session):
                planned, _ = await meanwhile(alongside(), work)
                if not planned:
                    raise _Undo
                await self.repo.insert_all(NewPerson._fields, stream())
        except (_Undo, asyncpg.UniqueViolationError, IntegrityError):
            return None
        await self.repo.add_events(events)
        return len(events)

    def _plan(
        self,
        missing: list[str],
        known: list[PersonState],
        people: PeopleView,
        change: Change,
        now: datetime,
    ) -> Work[tuple[list[NewPerson], list[PersonState], dict[str, list[Any]]]]:
        """The batch's change applied to the persons of `missing` (made new) and to those
        `known`: _new_persons' and _changes' results."""
        fresh = yield from self._new_persons(missing, people, change, now)
        updated, named = yield from self._changes(known, people, change, now)
        return fresh, updated, named

    def _changes(
        self, states: list[PersonState], people: PeopleView, change: Change, now: datetime
    ) -> Work[tuple[list[PersonState], dict[str, list[Any]]]]:
        """The batch's change applied to known persons, in slices: those it changed, and the
        columns `person_key`, `name_enc`, `name_key` of those who get a name now (the one
        given, sealed) or the key of a name given before keys were kept."""
        updated: list[PersonState] = []
        unnamed: list[tuple[str, str]] = []
        keyed: list[PersonState] = []
        for start in range(0, len(states), SLICE):
            for state in states[start : start + SLICE]:
                values = change(state)
                if values is not None:
                    # PersonState.apply, inline (once a person of thousands).
                    for column, value in values.items():
                        setattr(state, column, value)
                    state.color = effective_color(state.authority_color, state.nat_result)
                    state.version += 1
                    state.updated_at = now
                    updated.append(state)
                if state.name_missing:
                    name = people[state.person_key][1]
                    if name:
                        unnamed.append((state.person_key, name))
                elif state.legacy_name is not None:
                    self._key_on_file(state)
                    keyed.append(state)
            yield
        return updated, {
            "person_key": [key for key, _ in unnamed] + [s.person_key for s in keyed],
            "name_enc": self.sealer.seal_many([name.encode() for _, name in unnamed])
            + [s.legacy_name for s in keyed],
            "name_key": [self.name_key(name) for _, name in unnamed] + [s.name_key for s in keyed],
        }

    def _new_persons(
        self,
        keys: list[str],
        people: PeopleView,
        change: Change,
        now: datetime,
        rows: list[NewPerson] | None = None,
    ) -> Work[list[NewPerson]]:
        """The new persons of `keys`, the change applied, as their rows (ID number and name
        sealed, the name's key), in slices (appended to `rows` as they are made, when given).
        A new person is made as a row at once, not a PersonState: the change is asked of one
        probe state given each person's key in turn (a change reads a state and keeps nothing
        of it)."""
        seal_many = self.sealer.seal_many
        name_key = self.name_key
        subject_ids = new_ids(len(keys))
        probe = PersonState.new("", "", now)
        if rows is None:
            rows = []
        add = rows.append
        make = tuple.__new__  # NewPerson without its Python-level constructor
        for start in range(0, len(keys), SLICE):
            part = keys[start : start + SLICE]
            given = [people[key] for key in part]
            numbers = seal_many([id_number.encode() for id_number, _ in given])
            names = iter(seal_many([name.encode() for _, name in given if name]))
            for key, subject_id, (_, name), number in zip(
                part, subject_ids[start : start + SLICE], given, numbers, strict=True
            ):
                probe.person_key = key
                values = change(probe)
                sealed_name: bytes | None = None
                key_of_name: str | None = None
                if name:
                    sealed_name = next(names)
                    key_of_name = name_key(name)
                if values is None:
                    add(
                        make(NewPerson, (
                            key, "green", None, None, None, 0, None, 1, now, subject_id,
                            "green", None, number, sealed_name, key_of_name,
                        ))
                    )  # fmt: skip
                    continue
                status = _NEW_STATUS | values
                nat_result = status["nat_result"]
                authority_color = status["authority_color"]
                add(
                    make(NewPerson, (
                        key,
                        "red" if nat_result == "positive" else authority_color,  # effective_color
                        nat_result,
                        status["nat_sample_time"],
                        status["nat_report_time"],
                        status["vaccine_doses"],
                        status["last_dose_at"],
                        2,
                        now,
                        subject_id,
                        authority_color,
                        status["color_reason"],
                        number,
                        sealed_name,
                        key_of_name,
                    ))
                )  # fmt: skip
            yield
        return rows


def _outbox_rows(
    made: list[tuple[Any, ...]], states: Sequence[PersonState], now: datetime
) -> Work[list[tuple[Any, ...]]]:
    """The outbox rows (group_events') of the events `made` and of the states' status events
    (made here, in slices), in that order."""
    events = made + (yield from _events(states, now))
    return group_events(events)


def _events(
    states: Sequence[PersonState] | Sequence[NewPerson], now: datetime
) -> Work[list[tuple[Any, ...]]]:
    """The outbox rows of the states' status events, in slices."""
    rows: list[tuple[Any, ...]] = []
    event_ids = batch_ids(len(states))
    for start in range(0, len(states), SLICE):
        rows += status_changed_rows(
            states[start : start + SLICE], now, event_ids[start : start + SLICE]
        )
        yield
    return rows
