"""What the person package publishes: `health_records.status.changed.v1`, one event for each
change of a person's status (a code set by the authority, a batch's results or doses)."""

from collections.abc import Iterable
from datetime import datetime
from itertools import repeat
from typing import Any, Protocol, cast

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.events.envelope import STATUS_CHANGED
from hc_common.events.outbox import add_event
from hc_common.events.schemas import Color, StatusChanged
from hc_common.ids import new_id
from health_records.db import OutboxEvent


class StatusColumns(Protocol):
    """A person's status columns: a Person, or a batch's PersonState."""

    @property
    def subject_id(self) -> str: ...
    @property
    def color(self) -> str: ...
    @property
    def color_reason(self) -> str | None: ...
    @property
    def nat_result(self) -> str | None: ...
    @property
    def nat_sample_time(self) -> datetime | None: ...
    @property
    def nat_report_time(self) -> datetime | None: ...
    @property
    def vaccine_doses(self) -> int: ...
    @property
    def last_dose_at(self) -> datetime | None: ...
    @property
    def version(self) -> int: ...
    @property
    def updated_at(self) -> datetime: ...


def _seconds(value: datetime) -> datetime:
    """An instant as the contract writes it: whole seconds (the envelope keeps what it gets)."""
    return value.replace(microsecond=0) if value.microsecond else value


def _maybe_seconds(value: datetime | None) -> datetime | None:
    return None if value is None else _seconds(value)


def status_changed(person: StatusColumns) -> StatusChanged:
    """The event's payload: the person's status as the API shows it, without the masked ID
    number (an event never carries it)."""
    return {
        "subject_id": person.subject_id,
        "masked_id_number": None,
        "color": cast(Color, person.color),  # the column holds one of the colours
        "color_reason": person.color_reason,
        "nat": (
            {
                "result": person.nat_result,
                "sample_time": _seconds(person.nat_sample_time),
                "report_time": _maybe_seconds(person.nat_report_time),
            }
            if person.nat_result and person.nat_sample_time
            else None
        ),
        "vaccination": (
            {"doses": person.vaccine_doses, "last_dose_at": _maybe_seconds(person.last_dose_at)}
            if person.vaccine_doses
            else None
        ),
        "version": person.version,
        "updated_at": _seconds(person.updated_at),
    }


def stage_status_changed(session: AsyncSession, person: StatusColumns) -> None:
    """The person's status change, staged in the session's transaction."""
    add_event(session, OutboxEvent, STATUS_CHANGED, status_changed(person))


def status_changed_rows(
    persons: Iterable[StatusColumns],
    occurred_at: datetime,
    event_ids: Iterable[str] | None = None,
) -> list[tuple[Any, ...]]:
    """The outbox rows (person.repository.OUTBOX_COLUMNS) of the persons' status changes, for
    a batch: byte for byte the envelopes stage_status_changed writes (`event_ids`: theirs, made
    in bulk; else each gets a new one).

    Written from a template, not a dict and an encoding a person: a batch's events differ in a
    few values (subject, colour, version) and share the rest (the NAT result and its times, the
    reason), so each distinct part is encoded once and reused (a quarter of the cost for a
    lab's batch). tests/test_hr_events.py holds it to encode_envelope's bytes."""
    part = _Parts()
    rows: list[tuple[Any, ...]] = []
    ids: Iterable[str | None] = repeat(None) if event_ids is None else event_ids
    template = _TEMPLATE
    # The parts' texts looked up here first (a batch's parts are mostly found), made by
    # `part` when not.
    times, nats, vaccinations, reasons = part.times, part.nats, part.vaccinations, part.reasons
    stamp = part.json(occurred_at)  # as it is (the envelope's time is not rounded)
    # `event_ids`: one a person (strict: none left without one); else endless Nones.
    for person, given in zip(persons, ids, strict=event_ids is not None):
        event_id = given or new_id()
        nat_key = (person.nat_result, person.nat_sample_time, person.nat_report_time)
        vaccination_key = (person.vaccine_doses, person.last_dose_at)
        reason, updated_at = person.color_reason, person.updated_at
        payload = template % (
            event_id,
            stamp,
            person.subject_id,
            person.color,
            reasons[reason] if reason in reasons else part.reason(reason),
            nats[nat_key] if nat_key in nats else part.nat(*nat_key),
            vaccinations[vaccination_key]
            if vaccination_key in vaccinations
            else part.vaccination(*vaccination_key),
            person.version,
            times[updated_at] if updated_at in times else part.time(updated_at),
        )
        rows.append((event_id, STATUS_CHANGED, payload.encode(), occurred_at))
    return rows


# The envelope of a status event with its parts left open: the id, the envelope's time, the
# subject, the colour, then the parts _Parts encodes (JSON values, quoted as JSON quotes them),
# the version. Ids and colours are written as they are: their alphabets need no escape.
_TEMPLATE = (
    '{"id":"%s","type":"' + STATUS_CHANGED + '","occurred_at":%s,"data":{"subject_id":"%s",'
    '"masked_id_number":null,"color":"%s","color_reason":%s,"nat":%s,"vaccination":%s,'
    '"version":%d,"updated_at":%s}}'
)


class _Parts:
    """A batch's JSON texts of the parts of its events, each encoded once, as the envelope
    writer encodes them (orjson, times in UTC with `Z`; a batch's times are all in UTC, so
    equal times are the same text)."""

    def __init__(self) -> None:
        self.times: dict[datetime | None, str] = {}
        self.nats: dict[tuple[Any, ...], str] = {}
        self.vaccinations: dict[tuple[Any, ...], str] = {}
        self.reasons: dict[str | None, str] = {}

    @staticmethod
    def json(value: Any) -> str:
        return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()

    def time(self, value: datetime | None) -> str:
        found = self.times.get(value)
        if found is None:
            found = self.times[value] = self.json(_maybe_seconds(value))
        return found

    def nat(self, result: str | None, sample: datetime | None, report: datetime | None) -> str:
        key = (result, sample, report)
        found = self.nats.get(key)
        if found is None:
            found = self.nats[key] = self.json(
                {
                    "result": result,
                    "sample_time": _seconds(sample),
                    "report_time": _maybe_seconds(report),
                }
                if result and sample
                else None
            )
        return found

    def vaccination(self, doses: int, last: datetime | None) -> str:
        key = (doses, last)
        found = self.vaccinations.get(key)
        if found is None:
            found = self.vaccinations[key] = self.json(
                {"doses": doses, "last_dose_at": _maybe_seconds(last)} if doses else None
            )
        return found

    def reason(self, value: str | None) -> str:
        found = self.reasons.get(value)
        if found is None:
            found = self.reasons[value] = self.json(value)
        return found
