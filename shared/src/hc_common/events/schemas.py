"""The payloads (`data`) of the events that travel between services, one type per subject.

They are TypedDicts: a producer builds a plain dict that mypy checks against the type, and
`encode_envelope` writes it with orjson (datetimes and dates as RFC 3339), at no cost on the
scan path or in a batch of thousands; a consumer validates what arrives with Pydantic
(`parse_payload`), which turns the times back into datetimes. A change that is not backward
compatible gets a new subject (`.v2`), never a changed `.v1`.
"""

from datetime import date, datetime
from functools import cache
from typing import Any, Literal, NotRequired

from pydantic import TypeAdapter
from typing_extensions import TypedDict  # the one Pydantic validates on Python 3.11

from hc_common.events import envelope as subjects

Color = Literal["green", "yellow", "red"]


class CredentialChanged(TypedDict):
    """`issuer.credential.issued.v1` and `.revoked.v1`: what a verifier keeps of a credential,
    masked data only (never the ID number or the name in clear)."""

    credential_id: str
    subject_id: str
    version: int
    status: Literal["active", "revoked"]
    masked_name: str
    masked_id_number: str
    birth_date: date
    expires_at: datetime
    revoked_at: datetime | None


class VenueChanged(TypedDict):
    """`venue_admin.venue.changed.v1`."""

    venue_id: str
    deleted: bool


class MemberChanged(TypedDict):
    """`venue_admin.member.changed.v1`: a member's role and permissions at one venue; a
    removed member has no permissions. Applied only if `version` is newer than what is held."""

    venue_id: str
    user_id: str
    role: str
    permissions: list[str]
    removed: bool
    version: int


class RuleChanged(TypedDict):
    """`venue_admin.rule.changed.v1`: a venue's entry rule."""

    venue_id: str
    allowed_colors: list[Color]
    max_nat_age_hours: int | None
    min_vaccine_doses: int
    version: int


class DeviceChanged(TypedDict):
    """`venue_admin.device.changed.v1`: a gate of a venue, active or deleted."""

    device_id: str
    venue_id: str
    active: bool
    version: int


class NatStatus(TypedDict):
    result: str
    sample_time: datetime
    report_time: datetime | None


class VaccinationStatus(TypedDict):
    doses: int
    last_dose_at: datetime | None


class StatusChanged(TypedDict):
    """`health_records.status.changed.v1`: a person's live status, by pseudonymous subject.
    `masked_id_number` is never filled in an event."""

    subject_id: str
    masked_id_number: str | None
    color: Color
    color_reason: str | None
    nat: NatStatus | None
    vaccination: VaccinationStatus | None
    version: int
    updated_at: datetime


class Scanner(TypedDict):
    kind: Literal["user", "device"]
    id: str


class AccessRecordCreated(TypedDict):
    """`verifier.access_record.created.v1`: one scan's decision, written before the answer."""

    record_id: str
    venue_id: str
    checked_at: datetime
    decision: Literal["pass", "deny", "manual_check"]
    reasons: list[str]
    masked_name: str | None
    color: Color | None
    credential_id: str | None
    # The credential's pseudonymous subject (contact tracing finds a person's scans by it);
    # absent in records journaled before it was added.
    subject_id: NotRequired[str | None]
    scanner: Scanner


class AccessRecordBatch(TypedDict):
    """`verifier.access_record.batch.v1`: records of a verifier's journal, in the order they
    were written (a few hundred at most). One JetStream message for many records: at a
    province's rate a message per record cost the bus, the verifier's core and venue-admin
    several times what the records themselves did."""

    records: list[AccessRecordCreated]


PAYLOADS: dict[str, type[Any]] = {
    subjects.CREDENTIAL_ISSUED: CredentialChanged,
    subjects.CREDENTIAL_REVOKED: CredentialChanged,
    subjects.VENUE_CHANGED: VenueChanged,
    subjects.MEMBER_CHANGED: MemberChanged,
    subjects.RULE_CHANGED: RuleChanged,
    subjects.DEVICE_CHANGED: DeviceChanged,
    subjects.STATUS_CHANGED: StatusChanged,
    subjects.ACCESS_RECORD_CREATED: AccessRecordCreated,
    subjects.ACCESS_RECORD_BATCH: AccessRecordBatch,
}


@cache
def envelope_adapter(subject: str) -> TypeAdapter[Any]:
    """The validator of a whole event of `subject` (envelope and payload) from its JSON, in
    one pass (made once); KeyError for an unknown subject."""
    payload = PAYLOADS[subject]

    class Typed(TypedDict):
        id: NotRequired[str]
        type: str
        occurred_at: NotRequired[datetime]
        data: payload  # type: ignore[valid-type]  # the subject's payload type

    return TypeAdapter(Typed)


@cache
def payload_adapter(subject: str) -> TypeAdapter[Any]:
    """The validator of one subject's payload (made once); KeyError for an unknown subject."""
    return TypeAdapter(PAYLOADS[subject])


def parse_payload(subject: str, data: Any) -> Any:
    """`data` of an event of `subject`, validated (pydantic.ValidationError if it does not
    fit) and with its times as datetimes. Annotate the result with the subject's type."""
    return payload_adapter(subject).validate_python(data)
