"""A vaccination site's batch: VaccinationIn, the documented row and the definition of a valid
one, and the batch's rows checked against it."""

from datetime import UTC, datetime
from typing import Any, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from hc_common.idnumber import IdNumberField
from health_records.person.schemas import (
    CLOCK_SKEW,
    MAX_ROWS,
    RejectedRow,
    RowText,
    RowTime,
    present,
    validate_row,
)


class VaccinationIn(BaseModel):
    """One row of a vaccination site's batch."""

    model_config = ConfigDict(extra="ignore")

    record_id: RowText = Field(max_length=64)
    id_number: IdNumberField
    name: RowText = Field(max_length=50)
    vaccine: RowText = Field(max_length=100)
    manufacturer: RowText = Field(max_length=100)
    dose_number: int = Field(ge=1, le=10, strict=True)
    administered_at: RowTime
    site: RowText = Field(max_length=200)

    @model_validator(mode="after")
    def _time(self, info: ValidationInfo) -> Self:
        if self.administered_at > present(info) + CLOCK_SKEW:
            raise ValueError("administered_at is in the future")
        return self


class VaccinationBatch(BaseModel):
    """The request body (documentation; rows are validated one by one)."""

    records: list[VaccinationIn] = Field(max_length=MAX_ROWS)


class VaccinationRow(NamedTuple):
    """A valid row (time in UTC)."""

    record_id: str
    id_number: str
    name: str
    vaccine: str
    manufacturer: str
    dose_number: int
    administered_at: datetime
    site: str


def validate_vaccination_rows(
    rows: list[Any], now: datetime
) -> tuple[list[VaccinationRow], list[RejectedRow]]:
    """Each row of a vaccination site's batch alone, as VaccinationIn judges it at `now`: the
    valid rows, and a RejectedRow (validate_row's) for each of the others."""
    good: list[VaccinationRow] = []
    rejected: list[RejectedRow] = []
    for index, row in enumerate(rows):
        checked = validate_row(VaccinationIn, row, index, now)
        if isinstance(checked, RejectedRow):
            rejected.append(checked)
            continue
        good.append(
            VaccinationRow(
                checked.record_id,
                checked.id_number,
                checked.name,
                checked.vaccine,
                checked.manufacturer,
                checked.dose_number,
                checked.administered_at.astimezone(UTC),
                checked.site,
            )
        )
    return good, rejected
