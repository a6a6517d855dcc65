"""The rules of a person's status: colours, the red of a positive test, versions, events."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from hc_common.clock import utcnow
from hc_common.crypto import Sealer, keyed_hash
from hc_common.events import envelope as subjects
from hc_common.events.envelope import Envelope
from hc_common.events.outbox import add_event
from hc_common.ids import new_id
from hc_common.masking import mask_id_number
from health_records.db import OutboxEvent
from health_records.person.models import CodeChange, Person
from health_records.person.repository import PersonRepository
from health_records.person.schemas import Nat, Status, Vaccination


def effective_color(authority_color: str, nat_result: str | None) -> str:
    """A positive latest NAT turns the code red by itself."""
    return "red" if nat_result == "positive" else authority_color


def status_of(person: Person, id_number: str | None = None) -> Status:
    nat = None
    if person.nat_result and person.nat_sample_time:
        nat = Nat(result=person.nat_result, sample_time=person.nat_sample_time,
                  report_time=person.nat_report_time)
    vaccination = None
    if person.vaccine_doses:
        vaccination = Vaccination(doses=person.vaccine_doses, last_dose_at=person.last_dose_at)
    return Status(subject_id=person.subject_id, color=person.color,  # type: ignore[arg-type]
                  color_reason=person.color_reason, nat=nat, vaccination=vaccination,
                  version=person.version, updated_at=person.updated_at,
                  masked_id_number=mask_id_number(id_number) if id_number else None)


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

    def new_person(self, id_number: str, name: str | None, now: datetime) -> Person:
        """A person nobody has reported on: green, no NAT, no vaccination."""
        return Person(
            person_key=self.person_key(id_number), subject_id=new_id(),
            id_number_enc=self.sealer.seal(id_number.encode()),
            name_enc=self.sealer.seal(name.encode()) if name else None,
            color="green", authority_color="green", color_reason=None, nat_result=None,
            nat_sample_time=None, nat_report_time=None, vaccine_doses=0, last_dose_at=None,
            version=1, updated_at=now,
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
        add_event(self.session, OutboxEvent, subjects.STATUS_CHANGED,
                  status_of(person).model_dump(mode="json"))

    async def set_color(self, id_number: str, color: str, reason: str) -> Person:
        person = await self.get_or_create(id_number)
        person.authority_color = color
        person.color_reason = reason
        self.repo.add(CodeChange(id=new_id(), person_key=person.person_key, color=color,
                                 reason=reason, changed_at=utcnow()))
        self.touch(person)
        await self.session.flush()
        return person

    async def lock_many(self, people: dict[str, tuple[str, str | None]]) -> dict[str, Person]:
        """The persons `person_key -> (id_number, name)`, created in bulk where unknown, locked
        for this transaction. A known person without a name gets the one given."""
        now = utcnow()
        await self.repo.insert_missing([
            {"person_key": key, "subject_id": new_id(),
             "id_number_enc": self.sealer.seal(id_number.encode()),
             "name_enc": self.sealer.seal(name.encode()) if name else None,
             "color": "green", "authority_color": "green", "color_reason": None,
             "nat_result": None, "nat_sample_time": None, "nat_report_time": None,
             "vaccine_doses": 0, "last_dose_at": None, "version": 1, "updated_at": now}
            for key, (id_number, name) in people.items()])
        locked = await self.repo.by_keys(sorted(people), for_update=True)
        persons = {p.person_key: p for p in locked}
        for key, person in persons.items():
            name = people[key][1]
            if name and person.name_enc is None:
                person.name_enc = self.sealer.seal(name.encode())
        return persons

    async def change_many(self, changes: list[tuple[Person, dict[str, Any]]]) -> None:
        """Apply status changes to many locked persons in bulk: each gets its new values, its
        colour recomputed, version + 1 and ONE status event, in one UPDATE and one outbox
        INSERT (executemany) instead of a unit-of-work flush per person."""
        if not changes:
            return
        now = utcnow()
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for person, values in changes:
            for column, value in values.items():
                set_committed_value(person, column, value)
            set_committed_value(person, "color",
                                effective_color(person.authority_color, person.nat_result))
            set_committed_value(person, "version", person.version + 1)
            set_committed_value(person, "updated_at", now)
            updates.append({"b_key": person.person_key,
                            **{"b_" + c: getattr(person, c) for c in _STATUS_COLUMNS}})
            envelope = Envelope(type=subjects.STATUS_CHANGED,
                                data=status_of(person).model_dump(mode="json"))
            events.append({"event_id": envelope.id, "subject": subjects.STATUS_CHANGED,
                           "payload": envelope.to_bytes(), "created_at": envelope.occurred_at})
        table = Person.__table__
        conn = await self.session.connection()
        await conn.execute(
            update(table).where(table.c.person_key == bindparam("b_key"))
            .values({c: bindparam("b_" + c) for c in _STATUS_COLUMNS}), updates)
        await conn.execute(insert(OutboxEvent.__table__), events)


_STATUS_COLUMNS = ("color", "nat_result", "nat_sample_time", "nat_report_time", "vaccine_doses",
                   "last_dose_at", "version", "updated_at")
