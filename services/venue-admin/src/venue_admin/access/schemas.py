"""The access-record API's bodies, and the columns of the CSV export."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator
from pydantic_core import PydanticCustomError

from hc_common.clock import to_utc
from hc_common.schemas import Timestamp

# RFC 3339 date-time (section 5.6), offset required; ASCII digits only.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: object) -> object:
    # Pydantic alone would take `0.5` or `1764316800` as a Unix time, and a date alone.
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    raise PydanticCustomError(
        "invalid_time", "an RFC 3339 time with its offset, e.g. 2026-11-28T08:00:00Z"
    )


def _in_utc(value: datetime) -> datetime:
    # `0001-01-01T00:00:00+08:00` is a valid RFC 3339 time with no UTC one (year 0).
    try:
        return to_utc(value)
    except OverflowError:
        raise PydanticCustomError(
            "invalid_time", "a time between years 1 and 9999 in UTC"
        ) from None


# A time in a query: RFC 3339 with its offset (`2026-11-28T08:00:00Z`), nothing else; in UTC.
QueryTime = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]

# The CSV export's columns, in order: the codes as in the JSON items, plus `checked_at_local`
# (China time), `reasons_text` (the reasons in words) and `scanner_name`.
CSV_HEADER = [
    "record_id",
    "checked_at",
    "checked_at_local",
    "decision",
    "reasons",
    "reasons_text",
    "masked_name",
    "color",
    "scanner_kind",
    "scanner_id",
    "scanner_name",
]


class Decision(StrEnum):
    pass_ = "pass"
    deny = "deny"
    manual_check = "manual_check"


class Scanner(BaseModel):
    kind: str
    id: str


class AccessRecordOut(BaseModel):
    record_id: str
    checked_at: Timestamp
    decision: str
    reasons: list[str]
    masked_name: str | None
    color: str | None
    scanner: Scanner


class AccessRecordList(BaseModel):
    items: list[AccessRecordOut]
    next_cursor: str | None = None
