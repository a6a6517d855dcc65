from datetime import date

import pytest

from hc_common.idnumber import InvalidIdNumber, check_character, parse_id_number
from hc_common.testing import make_id_number

TODAY = date(2026, 11, 27)


def test_a_valid_number_gives_its_birth_date() -> None:
    number = make_id_number(date(1950, 3, 8))
    parsed = parse_id_number(number, TODAY)
    assert parsed.value == number
    assert parsed.birth_date == date(1950, 3, 8)
    assert parsed.region_code == "450103"


def test_the_published_example_checks() -> None:
    # GB 11643-1999's worked example: 11010519491231002X.
    assert parse_id_number("11010519491231002X", TODAY).birth_date == date(1949, 12, 31)


def test_a_lower_case_x_is_accepted_and_normalised() -> None:
    assert parse_id_number("11010519491231002x", TODAY).value == "11010519491231002X"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1101051949123100",  # too short
        "110105194912310021X",  # too long
        "11010519491231002Y",  # bad check character class
        "110105194912310021",  # wrong check character
        "A1010519491231002X",  # not digits
        "10010519491231002X",  # 10 is no province-level division
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
    ],
)
def test_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidIdNumber):
        parse_id_number(text, TODAY)


def test_a_date_that_does_not_exist_is_refused() -> None:
    first17 = "45010319500230123"  # 30 February
    with pytest.raises(InvalidIdNumber):
        parse_id_number(first17 + check_character(first17), TODAY)


def test_a_birth_date_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidIdNumber):
        parse_id_number(make_id_number(date(2026, 11, 28)), TODAY)
    assert parse_id_number(make_id_number(date(2026, 11, 27)), TODAY)


@pytest.mark.parametrize("region", ["110105", "650102", "710000", "810000", "820000"])
def test_every_kind_of_province_code_is_accepted(region: str) -> None:
    assert parse_id_number(make_id_number(date(1980, 1, 1), region=region), TODAY)


@pytest.mark.parametrize("region", ["660000", "700000", "830000", "090000"])
def test_other_province_codes_are_refused(region: str) -> None:
    with pytest.raises(InvalidIdNumber):
        parse_id_number(make_id_number(date(1980, 1, 1), region=region), TODAY)


def test_the_check_character_is_the_standards_weighted_sum() -> None:
    # GB 11643-1999 as written: weights 2 ** (17 - i) mod 11, the sum mod 11 looked up in
    # "10X98765432". check_character takes a shortcut; it must agree on every input.
    import random

    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    draw = random.Random(11643)
    samples = ["0" * 17, "9" * 17, "11010519491231002"]
    samples += ["".join(draw.choice("0123456789") for _ in range(17)) for _ in range(20_000)]
    for first17 in samples:
        total = sum(int(digit) * weight for digit, weight in zip(first17, weights, strict=True))
        assert check_character(first17) == "10X98765432"[total % 11], first17
