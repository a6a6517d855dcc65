from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hc_common.clock import utcnow
from hc_common.idnumber import IdNumberField
from health_records.batch import Check, RowRule, aware_datetime, id_number, one_of, text

# A clock a few minutes fast at the lab is not a reason to refuse its results.
CLOCK_SKEW = timedelta(minutes=5)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class NatResultIn(BaseModel):
    """One row of a lab's batch."""

    model_config = ConfigDict(extra="ignore")

    report_id: Annotated[Text, StringConstraints(max_length=64)]
    id_number: IdNumberField
    name: Annotated[Text, StringConstraints(max_length=50)]
    sample_time: AwareDatetime
    report_time: AwareDatetime
    result: Literal["negative", "positive"]
    institution: Annotated[Text, StringConstraints(max_length=200)]

    @model_validator(mode="after")
    def _times(self) -> "NatResultIn":
        if self.sample_time > utcnow() + CLOCK_SKEW:
            raise ValueError("sample_time is in the future")
        if self.report_time < self.sample_time:
            raise ValueError("report_time is before sample_time")
        return self


class NatBatch(BaseModel):
    """The request body (documentation; rows are validated one by one)."""

    results: list[NatResultIn] = Field(max_length=10_000)


class NatRow(NamedTuple):
    """A row that passed the checks (times aware, in UTC)."""

    report_id: str
    id_number: str
    name: str
    sample_time: datetime
    report_time: datetime
    result: str
    institution: str


def row_checks(today: date) -> list[tuple[str, Check]]:
    """NatResultIn's field rules as cheap checks, in NatRow's order."""
    return [("report_id", text(64)), ("id_number", id_number(today)), ("name", text(50)),
            ("sample_time", aware_datetime), ("report_time", aware_datetime),
            ("result", one_of("negative", "positive")), ("institution", text(200))]


def row_rule(now: datetime) -> RowRule:
    """NatResultIn's rule over the whole row."""
    latest = now + CLOCK_SKEW

    def rule(values: list[Any]) -> str | None:
        if values[3] > latest:
            return "sample_time is in the future"
        if values[4] < values[3]:
            return "report_time is before sample_time"
        return None

    return rule
