from datetime import UTC, date, datetime

from hc_common.clock import age_on, birthday_in, cst_today, end_of_cst_day, rfc3339
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
