"""Ids: python-ulid's ULIDs, written as python-ulid writes them (lower-case), in time order."""

import time

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from hc_common.hygiene import is_id
from hc_common.ids import encode, new_id


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
