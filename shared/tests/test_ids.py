"""Ids: python-ulid's ULIDs, written as python-ulid writes them (lower-case), in time order."""

import time

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from hc_common.hygiene import is_id
from hc_common.ids import batch_ids, encode, new_id, new_ids


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_the_text_is_python_ulids_own(value: int) -> None:
    assert encode(value) == str(ULID.from_int(value)).lower()


def test_new_ids_are_ours_unique_and_in_time_order() -> None:
    first = new_id()
    time.sleep(0.002)
    batch = [new_id() for _ in range(1000)]
    assert len(set(batch)) == 1000
    assert all(is_id(i) for i in [first, *batch])
    assert first < min(batch)


def test_bulk_ids_have_the_form_of_new_id_and_differ() -> None:
    ids = new_ids(2000)
    assert len(set(ids)) == 2000
    for made in ids:
        assert len(made) == 26 and encode(int(_crockford(made))) == made


def _crockford(text: str) -> int:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value = 0
    for char in text:
        value = value * 32 + alphabet.index(char)
    return value


def test_a_batchs_event_ids_have_the_form_of_new_id_and_differ() -> None:
    first, second = batch_ids(3000), batch_ids(3000)
    assert len(set(first) | set(second)) == 6000
    for made in first + second:
        assert len(made) == 26 and encode(int(_crockford(made))) == made
