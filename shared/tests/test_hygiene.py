"""Input hygiene: what a hostile or careless client sends is refused before it is used."""

import pytest
from pydantic import BaseModel, ValidationError

from hc_common.errors import NotFound
from hc_common.hygiene import EntityId, FreeText, Text, require_id
from hc_common.ids import new_id
from hc_common.phone import Phone


class Body(BaseModel):
    name: Text
    description: FreeText
    venue_id: EntityId
    phone: Phone


GOOD = {
    "name": "北门1号闸机 (Gate A)",
    "description": "第一行\n第二行\twith a tab",
    "venue_id": new_id(),
    "phone": "13800138000",
}


def test_ordinary_text_ids_and_phones_pass() -> None:
    assert Body(**GOOD).name == GOOD["name"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", "李\x00华", "invalid_text"),
        ("name", "line\nbreak", "invalid_text"),
        ("name", "tab\there", "invalid_text"),
        ("name", "del\x7f", "invalid_text"),
        ("name", "c1\x85", "invalid_text"),
        ("description", "nul\x00", "invalid_text"),
        ("description", "bell\x07", "invalid_text"),
        ("venue_id", "../scan-snapshot?limit=5000&x=", "invalid_id"),
        ("venue_id", new_id().upper(), "invalid_id"),
        ("venue_id", "01m8j34cv2hwg4m8v0br6538b\t", "invalid_id"),
        ("phone", "１３８００１３８０００", "invalid_phone"),  # full-width digits
        ("phone", "١٣٨٠٠١٣٨٠٠٠", "invalid_phone"),  # Arabic-Indic digits
    ],
)
def test_hostile_values_are_refused_with_their_code(field: str, value: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Body(**{**GOOD, field: value})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [((field,), code)]


def test_an_id_from_a_path_that_is_not_ours_is_not_found() -> None:
    good = new_id()
    assert require_id(good) == good
    for bad in ("../internal", "u" * 26, "", good + "0", "01M8J34CV2HWG4M8V0BR6538BK"):
        with pytest.raises(NotFound):
            require_id(bad)
