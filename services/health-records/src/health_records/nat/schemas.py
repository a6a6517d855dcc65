"""A lab's batch: NatResultIn, the documented row and the definition of a valid one, and the
batch's rows checked against it (with a fast path for the common shape of a row)."""

from collections.abc import Callable
from datetime import UTC, date, datetime
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
from hc_common.idnumber import IdNumberField, check_character, is_province_code
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

    def time_of(value: str) -> datetime | None:
        """A spelling not seen yet in the batch, parsed and kept (the row checks first)."""
        try:
            found: datetime | None = _TIME.validate_python(value).astimezone(UTC)
        except ValidationError:
            found = None
        times[value] = found
        return found

    id_value = id_number_fast_path(today)
    # Names and institutions repeat across a batch: each spelling is judged once.
    names: dict[str, bool] = {}
    institutions: dict[str, bool] = {}
    make = tuple.__new__  # NatRow without its Python-level constructor

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
        if (
            type(report_id) is not str
            or type(number) is not str
            or type(name) is not str
            or type(institution) is not str
            or type(sample_time) is not str
            or type(report_time) is not str
        ):
            return None
        if result == "negative":
            result = "negative"
        elif result == "positive":
            result = "positive"
        else:
            return None
        good = names.get(name)
        if good is None:
            good = names[name] = _plain(name, 50)
        if not good:
            return None
        good = institutions.get(institution)
        if good is None:
            good = institutions[institution] = _plain(institution, 200)
        if not good:
            return None
        if not (
            0 < len(report_id) <= 64
            and report_id.isprintable()
            and not report_id[0].isspace()
            and not report_id[-1].isspace()
        ):
            return None
        sample = times[sample_time] if sample_time in times else time_of(sample_time)
        report = times[report_time] if report_time in times else time_of(report_time)
        if sample is None or report is None or sample > latest or report < sample:
            return None
        number = id_value(number)
        if number is None:
            return None
        return make(NatRow, (report_id, number, name, sample, report, result, institution))

    return fast


# The two-digit province codes is_province_code takes.
_PROVINCES = frozenset(f"{n:02d}" for n in range(100) if is_province_code(f"{n:02d}"))


def id_number_fast_path(today: date) -> Callable[[str], str | None]:
    """parse_id_number(number, today).value for an ID number of the common shape (18
    characters, nothing to strip), each birth date checked once a batch; None for any other
    text, valid or not, which is then parse_id_number's to judge."""
    births: dict[str, bool] = {}  # YYYYMMDD -> a real date, from 1900 to today

    def born(text: str) -> bool:
        try:
            birth = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            return False
        return 1900 <= birth.year and birth <= today

    def id_value(number: str) -> str | None:
        if len(number) != 18:
            return None
        head = number[:17]
        if not (head.isascii() and head.isdigit() and number[:2] in _PROVINCES):
            return None
        birth = number[6:14]
        known = births.get(birth)
        if known is None:
            known = births[birth] = born(birth)
        last = number[17]
        if last == "x":
            last, number = "X", head + "X"
        return number if known and last == check_character(head) else None

    return id_value
