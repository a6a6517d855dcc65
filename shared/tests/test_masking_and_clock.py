from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from hc_common.clock import CST, age_on, birthday_in, cst_today, end_of_cst_day, rfc3339, to_utc
from hc_common.masking import mask_id_number, mask_name, mask_phone


def test_names_are_masked_as_the_contract_shows() -> None:
    assert mask_name("李秀华") == "李*华"
    assert mask_name("李华") == "李*"
    assert mask_name("欧阳秀华") == "欧**华"


def test_id_numbers_keep_the_first_six_and_last_four() -> None:
    assert mask_id_number("450103195003081234") == "450103********1234"


def test_phones_keep_the_first_three_and_last_four() -> None:
    assert mask_phone("13800138000") == "138****8000"


def test_age_is_in_full_years_in_china_time() -> None:
    assert age_on(date(1966, 11, 27), date(2026, 11, 27)) == 60
    assert age_on(date(1966, 11, 28), date(2026, 11, 27)) == 59


def test_a_29_february_birthday_falls_on_1_march_in_other_years() -> None:
    assert birthday_in(2027, date(2008, 2, 29)) == date(2027, 3, 1)
    assert birthday_in(2028, date(2008, 2, 29)) == date(2028, 2, 29)
    assert age_on(date(2008, 2, 29), date(2025, 2, 28)) == 16
    assert age_on(date(2008, 2, 29), date(2025, 3, 1)) == 17


def test_the_calendar_day_is_china_standard_time() -> None:
    assert cst_today(datetime(2026, 11, 27, 15, 59, tzinfo=UTC)) == date(2026, 11, 27)
    assert cst_today(datetime(2026, 11, 27, 16, 0, tzinfo=UTC)) == date(2026, 11, 28)


def test_end_of_day_is_23_59_59_china_time_written_in_utc() -> None:
    assert rfc3339(end_of_cst_day(date(2027, 11, 27))) == "2027-11-27T15:59:59Z"


@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.sampled_from([None, UTC, CST, timezone(timedelta(hours=-5, minutes=-30))]),
    )
)
def test_utc_and_the_china_day_of_any_time_are_those_of_its_conversion(value: datetime) -> None:
    # to_utc and cst_today take a UTC time as it is (the scan's fast path): the same answers
    # as converting, for UTC, naive (taken as UTC), China and other offsets alike.
    as_utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    assert to_utc(value) == as_utc and to_utc(value).tzinfo is UTC
    assert cst_today(value) == as_utc.astimezone(CST).date()
