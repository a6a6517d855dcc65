"""A lab's batch: NatResultIn, the documented row and the definition of a valid one, and the
batch's rows checked against it (with a fast path for the common shape of a row)."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from hc_common.clock import cst_today
from hc_common.idnumber import IdNumberField, InvalidIdNumber, parse_id_number
from health_records.person.schemas import (
    CLOCK_SKEW,
    MAX_ROWS,
    RejectedRow,
    RowText,
    RowTime,
    present,
    validate_row,
)


class NatResultIn(BaseModel):
    """One row of a lab's batch."""

    model_config = ConfigDict(extra="ignore")

    report_id: RowText = Field(max_length=64)
    id_number: IdNumberField
    name: RowText = Field(max_length=50)
    sample_time: RowTime
    report_time: RowTime
    result: Literal["negative", "positive"]
    institution: RowText = Field(max_length=200)

    @model_validator(mode="after")
    def _times(self, info: ValidationInfo) -> Self:
        if self.sample_time > present(info) + CLOCK_SKEW:
            raise ValueError("sample_time is in the future")
        if self.report_time < self.sample_time:
            raise ValueError("report_time is before sample_time")
        return self


class NatBatch(BaseModel):
    """The request body (documentation; rows are validated one by one)."""

    results: list[NatResultIn] = Field(max_length=MAX_ROWS)


class NatRow(NamedTuple):
    """A valid row (times in UTC)."""

    report_id: str
    id_number: str
    name: str
    sample_time: datetime
    report_time: datetime
    result: str
    institution: str

    @classmethod
    def of(cls, row: NatResultIn) -> "NatRow":
        return cls(
            row.report_id,
            row.id_number,
            row.name,
            row.sample_time.astimezone(UTC),
            row.report_time.astimezone(UTC),
            row.result,
            row.institution,
        )


def validate_nat_rows(rows: list[Any], now: datetime) -> tuple[list[NatRow], list[RejectedRow]]:
    """Each row of a lab's batch alone, as NatResultIn judges it at `now`: the valid rows, and
    a RejectedRow (validate_row's) for each of the others. A row the fast path takes is not
    given to the model (tests/test_hr_rows.py shows that the fast path takes only rows the
    model takes, with the same values)."""
    fast = nat_fast_path(now)
    good: list[NatRow] = []
    rejected: list[RejectedRow] = []
    for index, row in enumerate(rows):
        clean = fast(row)
        if clean is None:
            checked = validate_row(NatResultIn, row, index, now)
            if isinstance(checked, RejectedRow):
                rejected.append(checked)
                continue
            clean = NatRow.of(checked)
        good.append(clean)
    return good, rejected


_TIME: TypeAdapter[datetime] = TypeAdapter(RowTime)


def _plain(value: Any, max_length: int) -> bool:
    """A string that RowText leaves as it is and takes: 1 to `max_length` characters, nothing
    to strip at either end (str.isspace covers pydantic's whitespace and more), printable (so
    no control character)."""
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and value.isprintable()
        and not value[0].isspace()
        and not value[-1].isspace()
    )


def nat_fast_path(now: datetime) -> Callable[[Any], NatRow | None]:
    """A check of one row that gives its NatRow when the row has the common shape (a dict of
    plain strings: text with nothing to strip, a valid ID number, times the model's own type
    takes, each spelling parsed once a batch) and is valid at `now`; None for any other row,
    valid or not, which is then the model's to judge. It decides nothing the model would not:
    it takes a row only when each of NatResultIn's rules holds as it is written there."""
    today = cst_today(now)
    latest = now + CLOCK_SKEW
    times: dict[str, datetime | None] = {}  # a spelling -> the time in UTC, None if not one

    def time_of(value: Any) -> datetime | None:
        if type(value) is not str:
            return None
        try:
            return times[value]
        except KeyError:
            pass
        try:
            found: datetime | None = _TIME.validate_python(value).astimezone(UTC)
        except ValidationError:
            found = None
        times[value] = found
        return found

    def fast(row: Any) -> NatRow | None:
        if type(row) is not dict:
            return None
        try:
            report_id = row["report_id"]
            number = row["id_number"]
            name = row["name"]
            sample_time = row["sample_time"]
            report_time = row["report_time"]
            result = row["result"]
            institution = row["institution"]
        except KeyError:
            return None
        if not (
            _plain(report_id, 64)
            and _plain(name, 50)
            and _plain(institution, 200)
            and type(result) is str
            and (result == "negative" or result == "positive")
            and type(number) is str
        ):
            return None
        sample = time_of(sample_time)
        report = time_of(report_time)
        if sample is None or report is None or sample > latest or report < sample:
            return None
        try:
            number = parse_id_number(number, today).value
        except InvalidIdNumber:
            return None
        return NatRow(report_id, number, name, sample, report, result, institution)

    return fast
