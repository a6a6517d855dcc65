from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hc_common.clock import utcnow
from hc_common.idnumber import IdNumberField
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
