"""The API's models of contact tracing: the request, the answer (masked data only), the audit
list's entries."""

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from hc_common.hygiene import FreeText
from hc_common.idnumber import IdNumberField
from hc_common.schemas import Timestamp
from health_records.person.schemas import Color, RowTime

MAX_PERIOD = timedelta(days=14)
MAX_WINDOW_MINUTES = 240


class TracingCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id_number: IdNumberField = Field(description="The case's ID number")
    from_: RowTime = Field(alias="from", description="The case's scans from this time (included)")
    to: RowTime = Field(description="...up to this time (included), at most 14 days after `from`")
    window_minutes: int = Field(
        json_schema_extra={"minimum": 1, "maximum": MAX_WINDOW_MINUTES},
        description="Minutes before and after each of the case's visits",
    )
    apply_color: Literal["yellow", "red"] | None = Field(
        None, description="Turn each green contact this colour; null: a preview"
    )
    reason: FreeText | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="The reason kept with each colour set; default `时空伴随 <trace_id>`",
    )

    @field_validator("to")
    @classmethod
    def _period(cls, to: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("from_")
        if start is None:  # `from` itself is wrong: said once, there
            return to
        if to < start:
            raise PydanticCustomError("invalid_period", "`to` must not be before `from`")
        if to - start > MAX_PERIOD:
            raise PydanticCustomError("period_too_long", "at most 14 days from `from` to `to`")
        return to

    @field_validator("window_minutes")
    @classmethod
    def _window(cls, value: int) -> int:
        if not 1 <= value <= MAX_WINDOW_MINUTES:
            raise PydanticCustomError("invalid_window", "window_minutes must be 1-240")
        return value


class MaskedPerson(BaseModel):
    masked_name: str | None = Field(description="Null when no name is on file")
    masked_id_number: str


class TraceVisit(BaseModel):
    venue_id: str
    venue_name: str | None = Field(description="Null when venue-admin no longer knows it")
    checked_at: Timestamp


class TraceContact(BaseModel):
    masked_name: str | None
    masked_id_number: str
    venue_id: str
    venue_name: str | None
    checked_at: Timestamp = Field(description="The contact's first scan within a window")
    color_before: Color
    color_after: Color = Field(description="The colour after this request (a preview: unchanged)")


class Trace(BaseModel):
    trace_id: str
    case: MaskedPerson
    visits: list[TraceVisit] = Field(description="The case's scans, oldest first")
    contacts: list[TraceContact] = Field(description="Oldest first scan first")
    created_at: Timestamp
    apply_color: Literal["yellow", "red"] | None = Field(
        description="The colour asked for; null for a preview"
    )
    changed: int = Field(description="How many codes this request turned (0 for a preview)")
    unknown_contacts: int = Field(
        description="Subjects scanned within a window whom health-records does not know (left "
        "out of `contacts`; 0 unless the services' records disagree)"
    )
    records_kept_since: Timestamp | None = Field(
        description="Set when `from` is before it: access records older than this are purged "
        "(kept 28 days), so earlier visits and contacts cannot be found"
    )


class TraceSummary(BaseModel):
    trace_id: str
    created_at: Timestamp
    case: MaskedPerson
    visits: int
    contacts: int
    applied: bool = Field(description="Whether colours were applied (not a preview)")
    changed: int = Field(description="How many codes it turned")
    role: str = Field(description="The role whose key asked")


class TraceList(BaseModel):
    items: list[TraceSummary]
    next_cursor: str | None
