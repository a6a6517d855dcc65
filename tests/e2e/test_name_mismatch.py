"""A name that is not the one on file for an ID number, through the real processes: a lab's
row under another name is refused alone, and a family's application under another name is
refused by the issuer with the same code (the person's results must not go to someone else's
card)."""

from datetime import date

import pytest

from hc_common.testing import make_id_number, make_phone
from tests.conftest import Api
from tests.e2e.test_health_records import LAB, nat_row
from tests.journeys import apply_for, sign_in

pytestmark = pytest.mark.e2e


def test_an_application_under_another_name_is_refused(api: Api) -> None:
    id_number = make_id_number(date(1951, 6, 2))
    other = make_id_number(date(1952, 7, 3))
    rows = [nat_row(id_number, "positive", 2), dict(nat_row(other, "negative", 2), name="王小明")]
    pushed = api.health_records.post("/v1/nat-results/batch", headers=LAB, json={"results": rows})
    assert pushed.status_code == 200 and pushed.json()["accepted"] == 2, pushed.text
    # The same person under another name in a later batch: refused alone.
    again = [
        dict(nat_row(other, "positive", 1), name="王小明"),
        dict(nat_row(id_number, "negative", 1), name="王小明"),
    ]
    pushed = api.health_records.post(
        "/v1/nat-results/batch",
        headers={**LAB, "Accept-Language": "en"},
        json={"results": again},
    )
    assert pushed.status_code == 200, pushed.text
    body = pushed.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "name_mismatch")]
    assert body["rejected"][0]["detail"] == (
        "The name differs from the one on file for this ID number"
    )
    family = sign_in(api.issuer, make_phone())
    refused = apply_for(api.issuer, family, id_number, name="王小明")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "name_mismatch"
    assert refused.headers["content-type"].startswith("application/problem+json")
    # Under the name on file the card is issued.
    applied = apply_for(api.issuer, family, id_number, name="李秀华")
    assert applied.status_code == 201, applied.text
