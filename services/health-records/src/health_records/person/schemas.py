"""The API's models of persons (a status, a code set, a subject) and of a batch of rows about
persons (a lab's results, a vaccination site's doses): the rows' text fields, the answer and
each rejected row."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)

from hc_common.clock import utcnow
from hc_common.idnumber import IdNumberField
from hc_common.masking import mask_id_number
from hc_common.schemas import Timestamp
from health_records.person.models import Person


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it
        raise ValueError("must not contain the character U+0000")
    return value


# Text stored in PostgreSQL.
StoredText = Annotated[str, AfterValidator(_no_nul)]


# A text field of a batch's row (its length set by the field): whitespace stripped, not empty.
RowText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_no_nul)
]


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
    reason: StoredText = Field(min_length=1, max_length=500)


class SubjectRequest(BaseModel):
    id_number: IdNumberField
    name: StoredText | None = Field(None, max_length=50)


class Subject(BaseModel):
    subject_id: str


class StatusQuery(BaseModel):
    subject_ids: list[str] = Field(max_length=10000)


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
    first error (`missing` or `invalid_value`). The detail names each field and its rule,
    never a value (it may be an ID number)."""
    try:
        return model.model_validate(row, context={"now": now})
    except ValidationError as exc:
        errors: list[tuple[str, str, str]] = []
        for error in exc.errors(include_url=False, include_input=False):
            kind = error["type"]
            code = kind if kind in ("missing", "invalid_id_number") else "invalid_value"
            field = ".".join(str(part) for part in error["loc"]) or "row"
            message = "Input should be a valid dictionary" if kind == "model_type" else error["msg"]
            errors.append((field, code, message))
        codes = [code for _, code, _ in errors]
        return RejectedRow(
            index=index,
            code="invalid_id_number" if "invalid_id_number" in codes else codes[0],
            detail="; ".join(f"{field}: {message}" for field, _, message in errors)[:300],
        )
