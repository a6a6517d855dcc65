from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from hc_common.idnumber import IdNumberField
from hc_common.schemas import Timestamp


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it
        raise ValueError("must not contain the character U+0000")
    return value


# Text stored in PostgreSQL.
StoredText = Annotated[str, AfterValidator(_no_nul)]


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


class CodeSet(BaseModel):
    id_number: IdNumberField
    color: Color
    reason: StoredText = Field(min_length=1, max_length=500)


class SubjectRequest(BaseModel):
    id_number: IdNumberField
    name: StoredText | None = Field(None, max_length=50)


class Subject(BaseModel):
    subject_id: str
