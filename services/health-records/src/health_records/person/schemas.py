"""The API's models of persons (a status, a code set, a subject) and of a batch of rows about
persons (a lab's results, a vaccination site's doses): the rows' text fields, the answer and
each rejected row."""

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from hc_common.clock import utcnow
from hc_common.hygiene import EntityId, FreeText, Text
from hc_common.i18n import english, field_error, field_label, join_errors, validation_message
from hc_common.idnumber import IdNumberField
from hc_common.masking import mask_id_number
from hc_common.schemas import Timestamp
from health_records.person.models import Person

# hc_common.hygiene's check of a line of text (no control character), on its own.
_check_text = get_args(Text)[1].func


def _row_text(value: str) -> str:
    # Printable text holds no control character, so most values cost one pass at C speed.
    return value if value.isprintable() else _check_text(value)


# A text field of a batch's row (its length set by the field): whitespace stripped, not empty,
# then a line of text as hc_common.hygiene.Text has it (Annotated[Text, StringConstraints(...)]
# would check it before the strip, and refuse a name sent with a trailing line break).
RowText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_row_text)
]

# RFC 3339 (ASCII digits; `T` or a space; an offset or `Z`): pydantic's own parse of a time
# takes a number, or a string of digits, as a Unix time too.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"  # full-date
    r"[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"  # partial-time
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"  # time-offset
)


def _rfc3339(value: Any) -> Any:
    if type(value) is str and _RFC3339.fullmatch(value):
        return value
    raise PydanticCustomError(
        "invalid_time", "must be an RFC 3339 time with an offset, e.g. 2026-11-27T08:00:00Z"
    )


# A time of a batch's row: RFC 3339 text with an offset, never a number.
RowTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class Color(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class Nat(BaseModel):
    result: str = Field(description="negative | positive")
    sample_time: Timestamp
    report_time: Timestamp | None = None


class Vaccination(BaseModel):
    doses: int
    last_dose_at: Timestamp | None


class Status(BaseModel):
    """A person's live status. `nat` and `vaccination` are null when nobody reported any."""

    subject_id: str
    masked_id_number: str | None = None
    color: Color
    color_reason: str | None = None
    nat: Nat | None
    vaccination: Vaccination | None
    version: int = Field(description="Grows with every change; never applied out of order")
    updated_at: Timestamp


def status_of(person: Person, id_number: str | None = None) -> Status:
    """The person's status as the API shows it (the masked ID number when the caller gave it)."""
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
        color=Color(person.color),
        color_reason=person.color_reason,
        nat=nat,
        vaccination=vaccination,
        version=person.version,
        updated_at=person.updated_at,
        masked_id_number=mask_id_number(id_number) if id_number else None,
    )


class CodeSet(BaseModel):
    id_number: IdNumberField
    color: Color
    reason: FreeText = Field(min_length=1, max_length=500)


class SubjectRequest(BaseModel):
    id_number: IdNumberField
    name: Text | None = Field(None, max_length=50)


class Subject(BaseModel):
    subject_id: str


class StatusQuery(BaseModel):
    subject_ids: list[EntityId] = Field(max_length=10000)


class StatusList(BaseModel):
    items: list[Status]


# --- Batches ----------------------------------------------------------------------------------

MAX_ROWS = 10_000
# A clock a few minutes fast at the lab or the site is not a reason to refuse its rows.
CLOCK_SKEW = timedelta(minutes=5)


def present(info: ValidationInfo) -> datetime:
    """The present a row is judged at: the batch's (`now` in the validation context), else
    the clock's."""
    context = info.context
    return context["now"] if isinstance(context, dict) and "now" in context else utcnow()


class RejectedRow(BaseModel):
    index: int
    code: str
    detail: str


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedRow]


Row = TypeVar("Row", bound=BaseModel)


def validate_row(model: type[Row], row: Any, index: int, now: datetime) -> Row | RejectedRow:
    """The `index`-th row of a batch as its documented `model` (validated with `now` as the
    present), or why not: code `invalid_id_number` when the ID number is bad, else that of the
    first error (`missing` or `invalid_value`). The detail names each field in words and its
    rule, in the request's language (`english()`, set by the batch's body dependency), never
    a value (it may be an ID number)."""
    try:
        return model.model_validate(row, context={"now": now})
    except ValidationError as exc:
        in_english = english()
        codes: list[str] = []
        details: list[str] = []
        for error in exc.errors(include_url=False, include_input=False):
            kind = error["type"]
            codes.append(kind if kind in ("missing", "invalid_id_number") else "invalid_value")
            message = validation_message(kind, error.get("ctx"), in_english, fallback=error["msg"])
            label = field_label(error["loc"], in_english, whole="row")
            details.append(field_error(label, message, in_english))
        return RejectedRow(
            index=index,
            code="invalid_id_number" if "invalid_id_number" in codes else codes[0],
            detail=join_errors(details, in_english)[:300],
        )
