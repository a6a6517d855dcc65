from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hc_common.clock import utcnow
from hc_common.idnumber import IdNumberField
from health_records.batch import (
    Check,
    FieldError,
    RejectedRow,
    RowRule,
    aware_datetime,
    id_number,
    one_of,
    text,
    validate_rows,
)

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
    return [
        ("report_id", text(64)),
        ("id_number", id_number(today)),
        ("name", text(50)),
        ("sample_time", aware_datetime),
        ("report_time", aware_datetime),
        ("result", one_of("negative", "positive")),
        ("institution", text(200)),
    ]


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


def validate_nat_rows(
    rows: list[Any], today: date, now: datetime
) -> tuple[list[NatRow], list[RejectedRow]]:
    """validate_rows(rows, row_checks(today), row_rule(now)) for a lab's batch, as NatRows: a
    row of the common shape (every field a clean string, times in a spelling seen before in
    the batch or the common one) is checked inline; any other row goes through validate_rows,
    which gives the verdict, the code and the detail."""
    checks = row_checks(today)
    rule = row_rule(now)
    check_id = checks[1][1]
    latest = now + CLOCK_SKEW
    times: dict[str, datetime] = {}  # a time's spelling -> the time in UTC, once a batch

    def time_of(value: Any) -> datetime | None:
        if type(value) is not str:
            return None
        found = times.get(value)
        if found is None:
            try:
                found = times[value] = aware_datetime(value)
            except FieldError:
                return None
        return found

    good: list[NatRow] = []
    rejected: list[RejectedRow] = []
    for index, row in enumerate(rows):
        if type(row) is dict:
            try:
                report_id = row["report_id"].strip()
                name = row["name"].strip()
                institution = row["institution"].strip()
                result = row["result"]
                number = row["id_number"]
                sample = time_of(row["sample_time"])
                report = time_of(row["report_time"])
            except (KeyError, AttributeError, TypeError):
                pass  # not the common shape: judged below
            else:
                if (
                    0 < len(report_id) <= 64
                    and 0 < len(name) <= 50
                    and 0 < len(institution) <= 200
                    and (result == "negative" or result == "positive")
                    and sample is not None
                    and report is not None
                    and sample <= latest
                    and report >= sample
                    and "\x00" not in report_id
                    and "\x00" not in name
                    and "\x00" not in institution
                    and type(row["report_id"]) is str
                    and type(row["name"]) is str
                    and type(row["institution"]) is str
                    and type(result) is str
                ):
                    try:
                        number = check_id(number)
                    except FieldError:
                        pass
                    else:
                        good.append(
                            NatRow(report_id, number, name, sample, report, result, institution)
                        )
                        continue
        clean, bad = validate_rows([row], checks, rule)
        if clean:
            good.append(NatRow(*clean[0]))
        else:
            rejected.append(RejectedRow(index=index, code=bad[0].code, detail=bad[0].detail))
    return good, rejected
