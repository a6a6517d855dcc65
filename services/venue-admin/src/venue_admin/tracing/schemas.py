"""The internal co-presence query's request and answer: pseudonymous subject ids only, no
personal data."""

from datetime import timedelta
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hc_common.hygiene import EntityId
from hc_common.schemas import Timestamp
from venue_admin.tracing.service import MAX_PERIOD, MAX_WINDOW_MINUTES


class CoPresenceQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    subject_id: EntityId = Field(description="The case's subject id (health-records')")
    from_: AwareDatetime = Field(alias="from", description="Visits from this time (included)")
    to: AwareDatetime = Field(description="Visits up to this time (included)")
    window_minutes: int = Field(
        json_schema_extra={"minimum": 1, "maximum": MAX_WINDOW_MINUTES},
        description="Minutes before and after each visit",
    )

    @field_validator("window_minutes")
    @classmethod
    def _window(cls, value: int) -> int:
        if not 1 <= value <= MAX_WINDOW_MINUTES:
            raise PydanticCustomError("invalid_window", "window_minutes must be 1-240")
        return value

    @model_validator(mode="after")
    def _period(self) -> Self:
        if self.to < self.from_:
            raise PydanticCustomError("invalid_period", "`to` must not be before `from`")
        if self.to - self.from_ > MAX_PERIOD:
            raise PydanticCustomError("period_too_long", "at most 14 days from `from` to `to`")
        return self

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)


class VisitOut(BaseModel):
    venue_id: str
    venue_name: str | None = Field(description="Null when the venue is no longer known")
    checked_at: Timestamp


class ContactColumns(BaseModel):
    subject_ids: list[str]
    venue_ids: list[str]
    checked_at: list[Timestamp]
    masked_names: list[str | None]


class CoPresenceAnswer(BaseModel):
    visits: list[VisitOut] = Field(description="The case's scans, oldest first")
    contacts: list[ContactColumns] = Field(
        description="Other subjects' scans within the window of a visit, in parts, the "
        "parts and their rows ordered by time, venue id, then subject id; each part columns "
        "(a trace may find 200,000 scans): the i-th of a part "
        "is `subject_ids[i]`, scanned at `venue_ids[i]` at `checked_at[i]` showing "
        "`masked_names[i]` (the name the scan showed, masked; null when it showed none). A "
        "subject scanned more than once may be there each time: their first row is their "
        "first such scan, the one a trace names"
    )
    records_kept_since: Timestamp = Field(
        description="Records older than this are purged (the retention period)"
    )
