from datetime import date, datetime
from typing import Annotated, Any, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hc_common.clock import utcnow
from hc_common.idnumber import IdNumberField
from health_records.batch import Check, RowRule, aware_datetime, id_number, strict_int, text
from health_records.nat.schemas import CLOCK_SKEW, Text


class VaccinationIn(BaseModel):
    """One row of a vaccination site's batch."""

    model_config = ConfigDict(extra="ignore")

    record_id: Annotated[Text, StringConstraints(max_length=64)]
    id_number: IdNumberField
    name: Annotated[Text, StringConstraints(max_length=50)]
    vaccine: Annotated[Text, StringConstraints(max_length=100)]
    manufacturer: Annotated[Text, StringConstraints(max_length=100)]
    dose_number: int = Field(ge=1, le=10, strict=True)
    administered_at: AwareDatetime
    site: Annotated[Text, StringConstraints(max_length=200)]

    @model_validator(mode="after")
    def _time(self) -> "VaccinationIn":
        if self.administered_at > utcnow() + CLOCK_SKEW:
            raise ValueError("administered_at is in the future")
        return self


class VaccinationBatch(BaseModel):
    """The request body (documentation; rows are validated one by one)."""

    records: list[VaccinationIn] = Field(max_length=10_000)


class VaccinationRow(NamedTuple):
    """A row that passed the checks (time aware, in UTC)."""

    record_id: str
    id_number: str
    name: str
    vaccine: str
    manufacturer: str
    dose_number: int
    administered_at: datetime
    site: str


def row_checks(today: date) -> list[tuple[str, Check]]:
    """VaccinationIn's field rules as cheap checks, in VaccinationRow's order."""
    return [
        ("record_id", text(64)),
        ("id_number", id_number(today)),
        ("name", text(50)),
        ("vaccine", text(100)),
        ("manufacturer", text(100)),
        ("dose_number", strict_int(1, 10)),
        ("administered_at", aware_datetime),
        ("site", text(200)),
    ]


def row_rule(now: datetime) -> RowRule:
    """VaccinationIn's rule over the whole row."""
    latest = now + CLOCK_SKEW

    def rule(values: list[Any]) -> str | None:
        return "administered_at is in the future" if values[6] > latest else None

    return rule
