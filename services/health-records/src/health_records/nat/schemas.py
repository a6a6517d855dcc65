from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hc_common.clock import utcnow
from hc_common.idnumber import IdNumberField

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
