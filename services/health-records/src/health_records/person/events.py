"""What the person package publishes: `health_records.status.changed.v1`, one event for each
change of a person's status (a code set by the authority, a batch's results or doses)."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.events.envelope import STATUS_CHANGED, encode_envelope
from hc_common.events.outbox import add_event
from hc_common.events.schemas import Color, StatusChanged
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
    persons: Iterable[StatusColumns], occurred_at: datetime
) -> list[tuple[Any, ...]]:
    """The outbox rows (person.repository.OUTBOX_COLUMNS) of the persons' status changes, for
    a batch: the same envelopes as stage_status_changed's."""
    rows: list[tuple[Any, ...]] = []
    for person in persons:
        event_id, _, payload = encode_envelope(
            STATUS_CHANGED, status_changed(person), occurred_at=occurred_at
        )
        rows.append((event_id, STATUS_CHANGED, payload, occurred_at))
    return rows
