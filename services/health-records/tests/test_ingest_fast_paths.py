"""The batch path's shortcuts agree with what they stand for: the ID-number check of the NAT
fast path with parse_id_number, a batch's person keys with the keyed hash. No I/O."""

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from hc_common.idnumber import InvalidIdNumber, check_character, parse_id_number
from hc_common.testing import make_id_number
from health_records.nat.schemas import id_number_fast_path

TODAY = date(2026, 11, 29)


def parsed(text: str) -> str | None:
    try:
        return parse_id_number(text, TODAY).value
    except InvalidIdNumber:
        return None


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    """ID numbers as labs type them, and every way one can be off."""
    birth = draw(st.dates(date(1890, 1, 1), date(2030, 12, 31)))
    number = make_id_number(birth, serial=draw(st.integers(0, 999)))
    kind = draw(
        st.sampled_from(
            ["valid", "lower x", "digit", "check", "province", "date", "space", "width", "short"]
        )
    )
    if kind == "lower x":
        number = number[:17] + ("x" if number[17] == "X" else number[17])
    elif kind == "digit":
        at = draw(st.integers(0, 16))
        number = number[:at] + str(draw(st.integers(0, 9))) + number[at + 1 :]
    elif kind == "check":
        number = number[:17] + draw(st.sampled_from("0123456789Xx"))
    elif kind == "province":
        number = f"{draw(st.integers(0, 99)):02d}" + number[2:]
    elif kind == "date":
        month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
        number = number[:10] + f"{month:02d}{day:02d}" + number[14:17]
        number += check_character(number)
    elif kind == "space":
        number = draw(st.sampled_from([" ", "\u3000", ""])) + number + " "
    elif kind == "width":
        number = number[:5] + "５" + number[6:]
    elif kind == "short":
        number = number[: draw(st.integers(0, 17))]
    return number


@given(id_numbers())
def test_the_fast_id_check_takes_only_what_parse_id_number_takes(text: str) -> None:
    taken = id_number_fast_path(TODAY)(text)
    assert taken is None or taken == parsed(text)
    if parsed(text) is not None and len(text) == 18:
        assert taken == parsed(text)  # the common shape is taken, not left to the model


@given(st.binary(min_size=1, max_size=100), st.text(max_size=30))
def test_a_batchs_person_keys_are_the_keyed_hash(pepper: bytes, id_number: str) -> None:
    from hc_common.crypto import keyed_hash
    from health_records.person.service import PersonService

    service = PersonService(None, None, pepper)  # type: ignore[arg-type]  # no I/O here
    assert service.person_key_function()(id_number) == keyed_hash(pepper, "person:" + id_number)
    assert service.person_key_function()(id_number) == service.person_key(id_number)
