"""Health records through the real processes: a lab's or a vaccination site's batch changes what
the verifier answers at the next scan (the contract: within 2 seconds), and each batch endpoint
takes only its role's key."""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api
from tests.journeys import AUTHORITY, apply_for, open_venue, sign_in

pytestmark = pytest.mark.e2e

LAB = {"Authorization": "Bearer dev-lab-key"}
SITE = {"Authorization": "Bearer dev-vaccination-site-key"}
CODE = {"id_number": make_id_number(date(1950, 3, 8), serial=1), "color": "red", "reason": "x"}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nat_row(id_number: str, result: str, hours_ago: float) -> dict[str, Any]:
    sample = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    return {
        "report_id": uuid.uuid4().hex,
        "id_number": id_number,
        "name": "李秀华",
        "sample_time": iso(sample),
        "report_time": iso(sample + timedelta(minutes=30)),
        "result": result,
        "institution": "南宁市第一人民医院",
    }


def vaccination_row(id_number: str, dose: int, days_ago: int) -> dict[str, Any]:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    return {
        "record_id": uuid.uuid4().hex,
        "id_number": id_number,
        "name": "李秀华",
        "vaccine": "新冠病毒灭活疫苗",
        "manufacturer": "北京生物",
        "dose_number": dose,
        "administered_at": iso(at),
        "site": "青秀区接种点",
    }


def holder_at_a_venue(api: Api) -> tuple[str, dict[str, Any]]:
    """A credential holder (aged 76) and a scan of their card by a venue's main admin."""
    family = sign_in(api.issuer, make_phone())
    id_number = make_id_number(date(1950, 3, 8))
    applied = apply_for(api.issuer, family, id_number)
    assert applied.status_code == 201, applied.text
    admin = sign_in(api.issuer, make_phone())
    venue_id = open_venue(api.venue_admin, admin)
    return id_number, {
        "headers": admin,
        "json": {"qr": applied.json()["qr"], "venue_id": venue_id},
    }


def scan_until(api: Api, scan: dict[str, Any], seen: Any, within: float = 2.0) -> dict[str, Any]:
    """The verifier's answer once `seen(answer)` holds, polling for up to `within` seconds (the
    contract's bound for a status change to reach the verifier); the last answer otherwise."""
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        answer = api.verifier.post("/v1/verify", **scan)
        assert answer.status_code == 200, answer.text
        last = answer.json()
        return bool(seen(last))

    poll(check, within)
    return last


def test_positive_nat_in_a_lab_batch_denies_at_the_verifier(api: Api) -> None:
    id_number, scan = holder_at_a_venue(api)
    answer = api.verifier.post("/v1/verify", **scan)
    assert answer.status_code == 200, answer.text
    before = answer.json()
    assert before["decision"] == "pass" and before["health"]["nat"] is None

    valid = make_id_number(date(1960, 1, 1))
    bad = nat_row(valid[:17] + ("1" if valid[17] == "0" else "0"), "negative", 5)  # check char
    batch = [
        nat_row(make_id_number(date(1945, 6, 1)), "negative", 5),
        nat_row(id_number, "positive", 3.5),
        bad,
    ]
    pushed = api.health_records.post("/v1/nat-results/batch", headers=LAB, json={"results": batch})
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["accepted"] == 2 and pushed.json()["duplicates"] == 0
    assert [(r["index"], r["code"]) for r in pushed.json()["rejected"]] == [
        (2, "invalid_id_number")
    ]

    body = scan_until(api, scan, lambda b: b["decision"] == "deny")
    assert body["decision"] == "deny"
    assert body["reasons"] == ["color_red", "nat_positive"]
    assert body["health"]["color"] == "red"
    assert body["health"]["nat"] == {
        "result": "positive",
        "sample_time": batch[1]["sample_time"],
        "hours_since_sample": 3,
    }

    # The same batch again is all duplicates and changes nothing at the verifier.
    again = api.health_records.post(
        "/v1/nat-results/batch", headers=LAB, json={"results": batch[:2]}
    )
    assert again.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert api.verifier.post("/v1/verify", **scan).json()["reasons"] == [
        "color_red",
        "nat_positive",
    ]


def test_vaccination_batch_appears_in_the_scan(api: Api) -> None:
    id_number, scan = holder_at_a_venue(api)
    doses = [vaccination_row(id_number, 1, 200), vaccination_row(id_number, 2, 150)]
    pushed = api.health_records.post(
        "/v1/vaccinations/batch", headers=SITE, json={"records": doses}
    )
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {"accepted": 2, "duplicates": 0, "rejected": []}

    body = scan_until(api, scan, lambda b: b["health"]["vaccination"] is not None)
    assert body["health"]["vaccination"] == {
        "doses": 2,
        "last_dose_at": doses[1]["administered_at"],
    }
    assert body["decision"] == "pass" and body["health"]["color"] == "green"


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("/v1/nat-results/batch", {"results": []}, SITE, 403, "forbidden"),
        ("/v1/nat-results/batch", {"results": []}, AUTHORITY, 403, "forbidden"),
        ("/v1/nat-results/batch", {"results": []}, {}, 401, "unauthorized"),
        (
            "/v1/nat-results/batch",
            {"results": []},
            {"Authorization": "Bearer nope"},
            401,
            "unauthorized",
        ),
        ("/v1/vaccinations/batch", {"records": []}, LAB, 403, "forbidden"),
        ("/v1/vaccinations/batch", {"records": []}, {}, 401, "unauthorized"),
        ("/v1/codes", CODE, LAB, 403, "forbidden"),
        ("/v1/codes", CODE, SITE, 403, "forbidden"),
        ("/v1/codes", CODE, {}, 401, "unauthorized"),
    ],
)
def test_each_endpoint_takes_only_its_roles_key(
    api: Api, path: str, body: dict[str, Any], headers: dict[str, str], status: int, code: str
) -> None:
    answer: httpx.Response = api.health_records.post(path, headers=headers, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code


def test_the_right_keys_are_taken(api: Api) -> None:
    assert api.health_records.post(
        "/v1/nat-results/batch", headers=LAB, json={"results": []}
    ).json() == {"accepted": 0, "duplicates": 0, "rejected": []}
    assert (
        api.health_records.post(
            "/v1/vaccinations/batch", headers=SITE, json={"records": []}
        ).status_code
        == 200
    )
    coded = api.health_records.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": make_id_number(date(1948, 2, 2)), "color": "yellow", "reason": "行程"},
    )
    assert coded.status_code == 200 and coded.json()["color"] == "yellow"
