"""The access-record API's bodies, and the columns of the CSV export."""

from enum import StrEnum

from pydantic import BaseModel

from hc_common.schemas import Timestamp

CSV_HEADER = [
    "record_id",
    "checked_at",
    "decision",
    "reasons",
    "masked_name",
    "color",
    "scanner_kind",
    "scanner_id",
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
