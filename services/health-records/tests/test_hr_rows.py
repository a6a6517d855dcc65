"""A batch's rows judged as their documented models judge them: the NAT fast path takes only
rows NatResultIn takes, with the same values, so validate_nat_rows gives every row the model's
verdict, code and detail (property-based, Hypothesis); vaccination rows go through their model
alone. No I/O."""

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from hc_common.clock import cst_today, utcnow
from hc_common.idnumber import check_character
from hc_common.testing import make_id_number
from health_records.nat.schemas import NatResultIn, NatRow, nat_fast_path, validate_nat_rows
from health_records.person.schemas import CLOCK_SKEW, RejectedRow, validate_row
from health_records.testing import nat_row, new_id_number, vaccination_row
from health_records.vaccination.schemas import validate_vaccination_rows

# The present of every row below (the strategies are made relative to it).
NOW = utcnow().replace(microsecond=0)
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
FIELDS = ("report_id", "id_number", "name", "sample_time", "report_time", "result", "institution")


def by_model(row: Any) -> NatRow | RejectedRow:
    """The documented model's verdict on one row, as validate_nat_rows writes it."""
    checked = validate_row(NatResultIn, row, 0, NOW)
    return checked if isinstance(checked, RejectedRow) else NatRow.of(checked)


# --- Strategies: valid rows as labs send them, and every way a field or a row can be off -----

# Whitespace pydantic strips, and whitespace only Python calls so (U+001C..U+001F).
SPACES = st.sampled_from([" ", "\t", "\n", "\u3000", "\xa0", "\x85", "\x1c", "\x1f", "\u2028"])
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
OFFSETS = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
LIMIT = NOW + CLOCK_SKEW  # the latest sample time a row may have
# How long after its sample a report is (none, or before it, is among them).
DELAYS = [timedelta(microseconds=m) for m in (0, 1, 10**6, 3600 * 10**6, -1, -(10**6))]


# The characters of plain text: printable ones (a space, no other separator, no control or
# format character, nothing private or unassigned).
PRINTABLE = st.characters(
    exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"], include_characters=" "
)
# Characters a line of text must not hold (C0 and C1 controls, DEL; tab and line breaks too).
CONTROLS = st.sampled_from(
    ["\x00", "\x01", "\x07", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b"]
)
# Characters a line of text may hold that are not printable (separators, format characters,
# private use): the model takes them, the fast path leaves them to it.
ODD = st.sampled_from(["\u3000", "\xa0", "\u2028", "\u200b", "\u200d", "\xad", "\ue000"])


def plain_texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(PRINTABLE, min_size=1, max_size=max_size).filter(
        lambda s: not s[0].isspace() and not s[-1].isspace()
    )


@st.composite
def texts(draw: st.DrawFn, max_length: int) -> Any:
    """A text field, valid or not: plain, padded, blank, at or over its limit, with a control
    character or another character that is not printable."""
    plain = draw(plain_texts(12))
    padding = st.text(SPACES, max_size=2)
    kinds = ["plain", "padded", "blank", "long", "long", "control", "odd", "junk"]
    kind = draw(st.sampled_from(kinds))
    if kind == "padded":
        return draw(padding) + plain + draw(padding)
    if kind == "blank":
        return draw(padding)  # empty once stripped
    if kind == "long":
        return draw(st.sampled_from(["x", "院"])) * (max_length + draw(st.sampled_from([0, 1])))
    if kind in ("control", "odd"):
        at = draw(st.integers(0, len(plain)))
        return plain[:at] + draw(CONTROLS if kind == "control" else ODD) + plain[at:]
    if kind == "junk":
        return draw(JUNK)
    return plain


@st.composite
def id_numbers(draw: st.DrawFn) -> Any:
    """An ID number, valid or not: lower-case x, padded, a wrong check character, an unknown
    province, a birth date that is not a date or is out of range, a full-width digit."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JUNK)
    today = cst_today(NOW)
    region = draw(st.sampled_from(["450103", "110101", "820000", "990101", "000000", "71abcd"]))
    born = draw(
        st.one_of(
            st.dates(date(1900, 1, 1), today),
            st.dates(date(1899, 12, 30), date(1900, 1, 2)),
            st.dates(today - timedelta(days=1), today + timedelta(days=2)),
        )
    )
    first17 = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    number = first17 + (check_character(first17) if first17.isdigit() else "0")
    return draw(
        st.sampled_from(
            [
                number,
                number.lower(),
                " " + number + "\t",
                number[:17] + draw(st.sampled_from("0123456789Xx")),  # maybe a wrong check
                number[:17],
                number[:10] + "13" + number[12:],  # a month that is not one
                number.replace("5", "\uff15", 1),  # a full-width digit
            ]
        )
    )


def moments() -> st.SearchStrategy[datetime]:
    """Instants about the limit of the future, about NOW, and in the past."""
    about = st.builds(
        lambda at, seconds, micros: at + timedelta(seconds=seconds, microseconds=micros),
        st.sampled_from([LIMIT, NOW]),
        st.sampled_from([-1, 0, 1]),
        st.sampled_from([0, 1, 999_999]),
    )
    past = st.builds(lambda s: NOW - timedelta(seconds=s), st.integers(0, 86400 * 365 * 40))
    return about | past


@st.composite
def spellings(draw: st.DrawFn, moment: datetime) -> Any:
    """`moment` spelled in one of the ways a lab might, or not a time at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JUNK | st.text(alphabet="0123456789-:TZ+. ", max_size=26))
    local = moment.astimezone(draw(st.sampled_from(OFFSETS)))
    text = local.isoformat()
    return draw(
        st.sampled_from(
            [
                text,
                text.replace("+00:00", "Z"),
                local.isoformat(sep=" "),
                text.lower(),
                local.isoformat(timespec="milliseconds"),
                local.replace(tzinfo=None).isoformat(),  # no offset
                local.date().isoformat(),
                local.strftime("%Y-%m-%dT%H:%M:%S%z"),  # +0800
                str(int(local.timestamp())),  # a Unix time is not a time of the API
                int(local.timestamp()),
                local.timestamp(),
                text.translate(FULL_WIDTH),
            ]
        )
    )


@st.composite
def common_rows(draw: st.DrawFn) -> dict[str, Any]:
    """Valid rows as labs send them: plain text, a valid ID number, times with an offset."""
    sample = NOW - timedelta(seconds=draw(st.integers(0, 30 * 86400)))
    report = sample + timedelta(seconds=draw(st.integers(0, 86400)))
    offset = draw(st.sampled_from(OFFSETS))
    return {
        "report_id": draw(plain_texts(64)),
        "id_number": make_id_number(
            draw(st.dates(date(1900, 1, 1), cst_today(NOW))), serial=draw(st.integers(0, 999))
        ),
        "name": draw(plain_texts(50)),
        "sample_time": sample.astimezone(offset).isoformat().replace("+00:00", "Z"),
        "report_time": report.astimezone(offset).isoformat(),
        "result": draw(st.sampled_from(["negative", "positive"])),
        "institution": draw(plain_texts(200)),
    }


@st.composite
def times(draw: st.DrawFn, row: dict[str, Any]) -> None:
    """Other times for the row: a sample about the limit of the future or in the past, a
    report about the sample, each spelled in one of many ways."""
    sample = draw(moments())
    row["sample_time"] = draw(spellings(sample))
    row["report_time"] = draw(spellings(sample + draw(st.sampled_from(DELAYS))))


CHANGES: dict[str, Any] = {
    "report_id": lambda row: texts(64).map(lambda v: row.update(report_id=v)),
    "id_number": lambda row: id_numbers().map(lambda v: row.update(id_number=v)),
    "name": lambda row: texts(50).map(lambda v: row.update(name=v)),
    "times": times,
    "result": lambda row: (st.sampled_from(["Negative", "", " positive", "positive "]) | JUNK).map(
        lambda v: row.update(result=v)
    ),
    "institution": lambda row: texts(200).map(lambda v: row.update(institution=v)),
    "missing": lambda row: st.sampled_from(FIELDS).map(lambda f: row.pop(f, None)),
    "extra": lambda row: JUNK.map(lambda v: row.update(extra=v)),
}


def changed(change: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid rows with that one change."""
    return common_rows().flatmap(lambda row: CHANGES[change](row).map(lambda _: row))


@st.composite
def rows(draw: st.DrawFn) -> Any:
    """A valid row with one to three changes (other times, another value of a field, valid or
    not, a field left out, a field added); now and then not a row at all."""
    if draw(st.integers(0, 15)) == 0:
        return draw(JUNK | st.text(max_size=5))
    row = draw(common_rows())
    for change in draw(st.lists(st.sampled_from(sorted(CHANGES)), min_size=1, max_size=3)):
        draw(CHANGES[change](row))
    return row


# --- Properties -------------------------------------------------------------------------------


def agrees(row: Any) -> None:
    """validate_nat_rows gives the row the model's verdict (its values, or its code and
    detail), and the fast path takes it only if the model does, with the same values."""
    verdict = by_model(row)
    event(f"model: {'valid' if isinstance(verdict, NatRow) else verdict.code}")
    expected = ([verdict], []) if isinstance(verdict, NatRow) else ([], [verdict])
    assert validate_nat_rows([row], NOW) == expected
    taken = nat_fast_path(NOW)(row)
    event(f"fast path: {'taken' if taken is not None else 'left to the model'}")
    if taken is not None:
        assert taken == verdict


def valid(**fields: Any) -> dict[str, Any]:
    return {**nat_row(make_id_number(date(1980, 1, 1), serial=1)), **fields}


@settings(max_examples=500, deadline=None)
@given(rows())
# The edges of each rule, every run.
@example(valid(name="\x1c李秀华"))  # U+001C: whitespace to Python, not to pydantic
@example(valid(name="\u3000李秀华 "))
@example(valid(name="李\x7f华"))
@example(valid(institution="医院\x9b"))
@example(valid(report_id="r\u200b1"))  # a format character: the model's to take
@example(valid(name="李\u3000秀华"))
@example(valid(name="李秀华\n"))  # stripped, then a line of text
@example(valid(sample_time=1_700_000_000, report_time=1_700_000_060))
@example(valid(sample_time="1700000000", report_time="1700000060"))
@example(valid(sample_time=True, report_time=True))
@example(valid(report_id="r" * 64))
@example(valid(report_id="r" * 65))
@example(valid(name="名" * 51))
@example(valid(institution="院" * 201))
@example(valid(institution=" " + "院" * 200 + " "))
@example(valid(id_number=make_id_number(cst_today(NOW), serial=1)))
@example(valid(id_number=make_id_number(cst_today(NOW) + timedelta(days=1), serial=1)))
@example(valid(id_number=make_id_number(date(1899, 12, 31), serial=1)))
@example(valid(sample_time=LIMIT.isoformat(), report_time=LIMIT.isoformat()))
@example(
    valid(
        sample_time=(LIMIT + timedelta(microseconds=1)).isoformat(),
        report_time=(LIMIT + timedelta(seconds=1)).isoformat(),
    )
)
@example(
    valid(
        sample_time="2026-01-01T08:00:00+08:00",
        report_time="2026-01-01T00:00:00Z",  # the same instant
    )
)
@example(
    valid(
        sample_time="2026-01-01T00:00:00.000001Z",
        report_time="2026-01-01T00:00:00Z",  # a microsecond before
    )
)
def test_each_row_gets_the_models_verdict(row: Any) -> None:
    agrees(row)


@settings(max_examples=200, deadline=None)
@given(changed("times"))
def test_the_time_rules_are_the_models(row: dict[str, Any]) -> None:
    agrees(row)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["report_id", "name", "institution", "result"]).flatmap(changed))
def test_the_text_rules_are_the_models(row: dict[str, Any]) -> None:
    agrees(row)


@settings(max_examples=200, deadline=None)
@given(changed("id_number"))
def test_the_id_number_rule_is_the_models(row: dict[str, Any]) -> None:
    agrees(row)


@settings(max_examples=200, deadline=None)
@given(common_rows())
def test_the_fast_path_takes_the_common_rows(row: dict[str, Any]) -> None:
    taken = nat_fast_path(NOW)(row)
    assert taken is not None
    assert taken == by_model(row)
    assert taken.sample_time.tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(rows(), common_rows()), max_size=12))
def test_one_fast_path_over_a_batch_judges_each_row_as_alone(batch: list[Any]) -> None:
    """A batch's fast path keeps what it has judged (names, institutions, times): each row
    still gets what a fast path of its own gives it, whatever came before."""
    fast = nat_fast_path(NOW)
    assert [fast(row) for row in batch] == [nat_fast_path(NOW)(row) for row in batch]


def test_a_batch_keeps_each_rows_index_and_the_order_of_the_good_ones() -> None:
    good = [nat_row(new_id_number()) for _ in range(3)]
    late = dict(good[0], report_id="late", report_time="2000-01-01T00:00:00Z")
    batch = [good[0], "row", late, good[1], {**good[2], "name": " 王五 "}]
    taken, rejected = validate_nat_rows(batch, NOW)
    assert [row.report_id for row in taken] == [r["report_id"] for r in good]
    assert taken[2].name == "王五"
    assert rejected == [
        RejectedRow(index=1, code="invalid_value", detail="该行：应为 JSON 对象"),
        RejectedRow(index=2, code="invalid_value", detail="该行：报告时间早于采样时间"),
    ]


def test_a_bad_id_number_is_the_rows_code_whatever_else_is_wrong() -> None:
    row = dict(nat_row(new_id_number()), id_number="110101190001011234", result="maybe")
    del row["name"]
    [rejected] = validate_nat_rows([row], NOW)[1]
    assert rejected.code == "invalid_id_number"
    assert rejected.detail.startswith("身份证号码：不是有效的身份证号码：校验码错误")
    assert "姓名：必须填写" in rejected.detail and "检测结果：" in rejected.detail
    assert "110101190001011234" not in rejected.detail


def test_vaccination_rows_are_judged_by_their_model() -> None:
    person = new_id_number()
    batch = [
        vaccination_row(person, dose=2),
        vaccination_row(person, dose=0),
        vaccination_row(person, dose=True),
        vaccination_row(person, administered_at=(NOW + timedelta(hours=1)).isoformat()),
        vaccination_row(person, site="  青秀区接种点 "),
        {k: v for k, v in vaccination_row(person).items() if k != "vaccine"},
        vaccination_row(person, administered_at=int(NOW.timestamp()) - 60),
        vaccination_row(person, vaccine="新冠\x1b[2J"),
        vaccination_row(person, site="青秀区\t接种点"),
    ]
    taken, rejected = validate_vaccination_rows(batch, NOW)
    assert [(row.dose_number, row.site) for row in taken] == [
        (2, "青秀区接种点"),
        (1, "青秀区接种点"),
    ]
    assert taken[0].administered_at.tzinfo is UTC
    assert [(r.index, r.code, r.detail.split("：")[0]) for r in rejected] == [
        (1, "invalid_value", "接种剂次"),
        (2, "invalid_value", "接种剂次"),
        (3, "invalid_value", "该行"),
        (5, "missing", "疫苗名称"),
        (6, "invalid_value", "接种时间"),
        (7, "invalid_value", "疫苗名称"),
        (8, "invalid_value", "接种点"),
    ]
