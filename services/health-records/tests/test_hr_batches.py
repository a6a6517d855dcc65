"""The contract's health-records section: batches, codes, roles, the unreported person."""

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hc_common.masking import mask_id_number
from health_records.testing import (
    AUTHORITY,
    LAB,
    SERVICE,
    SITE,
    nat_row,
    new_id_number,
    status_of,
    subject_of,
    vaccination_row,
)


async def push_nat(hr: httpx.AsyncClient, rows: list[dict[str, Any]], **kw: Any) -> httpx.Response:
    return await hr.post("/v1/nat-results/batch", headers=LAB, json={"results": rows}, **kw)


async def test_nat_batch_accepts_rows_and_sets_latest_result(hr: httpx.AsyncClient) -> None:
    person = new_id_number()
    older, newer = nat_row(person, hours_ago=50), nat_row(person, hours_ago=20)
    response = await push_nat(hr, [newer, older])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    status = await status_of(hr, person)
    assert status["nat"]["result"] == "negative"
    assert status["nat"]["sample_time"] == newer["sample_time"]
    assert status["color"] == "green"


async def test_bad_row_among_good_ones_is_rejected_alone(hr: httpx.AsyncClient) -> None:
    good = [nat_row(new_id_number()) for _ in range(3)]
    bad_id = nat_row(new_id_number())
    bad_id["id_number"] = bad_id["id_number"][:17] + (
        "0" if bad_id["id_number"][17] != "0" else "1"
    )
    bad_result = nat_row(new_id_number(), result="maybe")
    no_time = nat_row(new_id_number())
    del no_time["sample_time"]
    rows = [good[0], bad_id, good[1], bad_result, no_time, good[2], "not an object"]
    response = await push_nat(hr, rows)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 3 and body["duplicates"] == 0
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "invalid_id_number"),
        (3, "invalid_value"),
        (4, "missing"),
        (6, "invalid_value"),
    ]
    assert bad_id["id_number"] not in response.text  # no ID number echoed back
    for row in good:
        assert (await status_of(hr, row["id_number"]))["nat"]["result"] == "negative"
    # The rejected person got no NAT data.
    assert (await status_of(hr, bad_result["id_number"]))["nat"] is None


async def test_lower_case_x_is_accepted_and_normalised(hr: httpx.AsyncClient) -> None:
    person = new_id_number()
    while not person.endswith("X"):
        person = new_id_number()
    response = await push_nat(hr, [nat_row(person.lower())])
    assert response.json()["accepted"] == 1
    assert (await status_of(hr, person))["nat"] is not None


async def test_repeated_batch_is_all_duplicates_and_changes_nothing(hr: httpx.AsyncClient) -> None:
    person = new_id_number()
    rows = [nat_row(person, hours_ago=30), nat_row(new_id_number())]
    assert (await push_nat(hr, rows)).json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    before = await status_of(hr, person)
    again = await push_nat(hr, rows)
    assert again.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    # A known report_id with other content is still a duplicate and changes nothing.
    fresh = nat_row(person, hours_ago=1)
    changed = dict(
        rows[0],
        result="positive",
        sample_time=fresh["sample_time"],
        report_time=fresh["report_time"],
    )
    assert (await push_nat(hr, [changed])).json() == {
        "accepted": 0,
        "duplicates": 1,
        "rejected": [],
    }
    after = await status_of(hr, person)
    assert after == before


@pytest.mark.parametrize("sampled", [True, False], ids=["seen-first", "seen-by-the-attempt"])
async def test_a_known_report_among_new_ones_changes_nothing_and_the_rest_is_stored(
    hr: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, sampled: bool
) -> None:
    # A batch is first stored as if all its report ids were new, all or none, unless one of
    # the few looked up first is known. One known report id among new ones (with other
    # content), found by that look-up or by the attempt (which then leaves nothing written):
    # the batch is stored without it, the new rows count, once each, and set the statuses.
    from health_records.nat.repository import NatResultRepository

    person, other = new_id_number(), new_id_number()
    first = nat_row(person, hours_ago=30)
    assert (await push_nat(hr, [first])).json()["accepted"] == 1
    before = await status_of(hr, person)
    if not sampled:  # the batch's first look-up (its sample) is made to miss it
        looked_up: list[list[str]] = []
        real = NatResultRepository.known

        async def blind_first(self: NatResultRepository, report_ids: list[str]) -> set[str]:
            looked_up.append(report_ids)
            return set() if len(looked_up) == 1 else await real(self, report_ids)

        monkeypatch.setattr(NatResultRepository, "known", blind_first)
    latest = nat_row(person, hours_ago=1)
    known = dict(first, result="positive", sample_time=latest["sample_time"])
    known["report_time"] = latest["report_time"]
    newer = nat_row(person, hours_ago=5)
    response = await push_nat(hr, [newer, known, nat_row(other, result="positive")])
    assert response.json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    after = await status_of(hr, person)
    assert after["nat"]["result"] == "negative" and after["color"] == "green"
    assert after["nat"]["sample_time"] == newer["sample_time"]
    assert after["version"] == before["version"] + 1  # one change for the batch
    assert (await status_of(hr, other))["color"] == "red"
    assert (await status_of(hr, other))["version"] == 2  # made, then one change
    if not sampled:  # the attempt found it: then every report id was looked up
        assert [len(ids) for ids in looked_up] == [3, 3]


async def test_all_or_none_insert_stores_nothing_when_one_key_is_known(
    hr: httpx.AsyncClient, hr_app: FastAPI
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from health_records.nat.models import NatResult
    from health_records.nat.repository import COLUMNS
    from health_records.person.repository import insert_all_rows

    now = datetime.now(UTC).replace(microsecond=0)

    def record(report_id: str) -> tuple[object, ...]:
        return (report_id, "k" * 64, "negative", now, now, "南宁市第一人民医院", now)

    first, second, third = (uuid.uuid4().hex for _ in range(3))
    table = NatResult.__table__
    db = hr_app.state.runtime.db
    async with db.sessionmaker() as session:
        stored = await insert_all_rows(session, table, COLUMNS, [record(first)], "report_id")
        assert stored == {first}
        await session.commit()
    async with db.sessionmaker() as session:
        rows = [record(second), record(first), record(third)]
        assert await insert_all_rows(session, table, COLUMNS, rows, "report_id") is None
        # The transaction goes on (only the savepoint was rolled back) and holds none of them.
        ids = [second, first, third]
        held = await session.scalar(
            select(func.count()).select_from(table).where(table.c.report_id.in_(ids))
        )
        assert held == 1
        stored = await insert_all_rows(session, table, COLUMNS, [record(third)], "report_id")
        assert stored == {third}
        await session.commit()


async def test_duplicate_within_one_batch_counts_once(hr: httpx.AsyncClient) -> None:
    person = new_id_number()
    row = nat_row(person)
    response = await push_nat(hr, [row, row, dict(row, result="positive")])
    assert response.json() == {"accepted": 1, "duplicates": 2, "rejected": []}
    status = await status_of(hr, person)
    assert status["nat"]["result"] == "negative" and status["color"] == "green"


async def test_positive_nat_turns_code_red_and_later_negative_restores(
    hr: httpx.AsyncClient,
) -> None:
    person = new_id_number()
    assert (await push_nat(hr, [nat_row(person, result="positive", hours_ago=30)])).json()[
        "accepted"
    ] == 1
    status = await status_of(hr, person)
    assert status["color"] == "red" and status["nat"]["result"] == "positive"
    # The authority cannot make a positive person green while the latest NAT is positive.
    coded = await hr.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": person, "color": "green", "reason": "复核"},
    )
    assert coded.status_code == 200 and coded.json()["color"] == "red"
    # An older negative does not change the status; a newer one gives back the set colour.
    await push_nat(hr, [nat_row(person, hours_ago=40)])
    assert (await status_of(hr, person))["color"] == "red"
    await push_nat(hr, [nat_row(person, hours_ago=5)])
    status = await status_of(hr, person)
    assert status["color"] == "green" and status["nat"]["result"] == "negative"


async def test_unreported_person_is_green_without_data(hr: httpx.AsyncClient) -> None:
    status = await status_of(hr, new_id_number())
    assert status["color"] == "green"
    assert status["nat"] is None and status["vaccination"] is None


async def test_unknown_subject_status_is_404(hr: httpx.AsyncClient) -> None:
    response = await hr.get(
        "/internal/v1/subjects/01kzzzzzzzzzzzzzzzzzzzzzzz/status", headers=SERVICE
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_codes_set_colour_with_reason(hr: httpx.AsyncClient) -> None:
    person = new_id_number()
    response = await hr.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": person, "color": "yellow", "reason": "行程"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["color"] == "yellow" and body["color_reason"] == "行程"
    assert body["masked_id_number"] == mask_id_number(person)
    assert body["subject_id"] == await subject_of(hr, person)
    assert (await status_of(hr, person))["color"] == "yellow"


async def test_codes_reject_bad_input_with_422(hr: httpx.AsyncClient) -> None:
    bad = await hr.post(
        "/v1/codes", headers=AUTHORITY, json={"id_number": "123", "color": "red", "reason": "x"}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_id_number"
    color = await hr.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": new_id_number(), "color": "blue", "reason": "x"},
    )
    assert color.status_code == 422


async def test_vaccination_batch_summarises_doses(hr: httpx.AsyncClient) -> None:
    person = new_id_number()
    rows = [
        vaccination_row(person, dose=1, days_ago=300),
        vaccination_row(person, dose=3, days_ago=30),
        vaccination_row(person, dose=2, days_ago=200),
    ]
    bad = vaccination_row(new_id_number(), dose=0)
    response = await hr.post("/v1/vaccinations/batch", headers=SITE, json={"records": [*rows, bad]})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": [
            {
                "index": 3,
                "code": "invalid_value",
                "detail": response.json()["rejected"][0]["detail"],
            }
        ],
    }
    status = await status_of(hr, person)
    assert status["vaccination"] == {"doses": 3, "last_dose_at": rows[1]["administered_at"]}
    assert status["nat"] is None and status["color"] == "green"
    again = await hr.post("/v1/vaccinations/batch", headers=SITE, json={"records": rows})
    assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    assert await status_of(hr, person) == status


async def test_roles_are_checked(hr: httpx.AsyncClient) -> None:
    code = {"id_number": new_id_number(), "color": "red", "reason": "x"}
    lab_on_codes = await hr.post("/v1/codes", headers=LAB, json=code)
    assert lab_on_codes.status_code == 403 and lab_on_codes.json()["code"] == "forbidden"
    no_key = await hr.post("/v1/codes", json=code)
    assert no_key.status_code == 401 and no_key.json()["code"] == "unauthorized"
    wrong_key = await hr.post("/v1/codes", json=code, headers={"X-API-Key": "nope"})
    assert wrong_key.status_code == 401
    site_on_nat = await hr.post("/v1/nat-results/batch", headers=SITE, json={"results": []})
    assert site_on_nat.status_code == 403
    lab_on_vacc = await hr.post("/v1/vaccinations/batch", headers=LAB, json={"records": []})
    assert lab_on_vacc.status_code == 403
    anon = await hr.post("/v1/nat-results/batch", json={"results": [nat_row(new_id_number())]})
    assert anon.status_code == 401
    authority_on_nat = await hr.post(
        "/v1/nat-results/batch", headers=AUTHORITY, json={"results": []}
    )
    assert authority_on_nat.status_code == 403


async def test_10001_rows_is_422_and_stores_nothing(hr: httpx.AsyncClient) -> None:
    person = new_id_number()
    rows = [nat_row(person)] * 10_001
    response = await push_nat(hr, rows)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "results"
    assert (await status_of(hr, person))["nat"] is None


async def test_body_shape_errors_are_422_not_500(hr: httpx.AsyncClient) -> None:
    for body in (b"{", b"[]", b'{"results": 3}', b'{"records": []}'):
        response = await hr.post(
            "/v1/nat-results/batch",
            headers={**LAB, "content-type": "application/json"},
            content=body,
        )
        assert response.status_code == 422, body


async def test_batch_body_may_exceed_4_mib_up_to_16(hr: httpx.AsyncClient) -> None:
    rows = [nat_row(new_id_number(), institution="院" * 150) for _ in range(9_000)]
    response = await push_nat(hr, rows)
    assert len(response.request.content) > 4 * 1024 * 1024
    assert response.status_code == 200, response.text[:300]
    assert response.json()["accepted"] == 9_000
    big = await hr.post(
        "/v1/nat-results/batch",
        headers={**LAB, "content-type": "application/json"},
        content=b'{"results": [' + b" " * (17 << 20) + b"]}",
    )
    assert big.status_code == 413
    codes = await hr.post(
        "/v1/codes",
        headers={**AUTHORITY, "content-type": "application/json"},
        content=b" " * (5 << 20),
    )
    assert codes.status_code == 413


async def test_text_with_nul_character_is_invalid_value_not_500(hr: httpx.AsyncClient) -> None:
    # PostgreSQL cannot store U+0000: a row carrying it is rejected alone, the others kept.
    rows = [
        nat_row(new_id_number(), name="李\x00秀华"),
        nat_row(new_id_number()),
        nat_row(new_id_number(), institution="\x00"),
        nat_row(new_id_number(), report_id="r\x00"),
    ]
    response = await push_nat(hr, rows)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (0, "invalid_value"),
        (2, "invalid_value"),
        (3, "invalid_value"),
    ]
    assert body["rejected"][0]["detail"] == "姓名：含有不允许的控制字符"
    site = vaccination_row(new_id_number())
    site["vaccine"] = "新冠\x00"
    response = await hr.post("/v1/vaccinations/batch", headers=SITE, json={"records": [site]})
    assert response.status_code == 200, response.text
    assert [r["code"] for r in response.json()["rejected"]] == ["invalid_value"]
    # The same for the single-person endpoints: 422, nothing stored.
    person = new_id_number()
    response = await hr.post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": person, "color": "yellow", "reason": "行\x00程"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["code"] == "invalid_text"
    response = await hr.post(
        "/internal/v1/subjects", headers=SERVICE, json={"id_number": person, "name": "\x00"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["code"] == "invalid_text"


async def test_bulk_insert_skips_a_row_inserted_meanwhile(
    hr: httpx.AsyncClient, hr_app: FastAPI
) -> None:
    # A report id unknown when the batch looked (a concurrent batch stored it since): the COPY
    # meets the unique key, and the rows go in with ON CONFLICT DO NOTHING instead.
    from datetime import UTC, datetime

    from health_records.nat.models import NatResult
    from health_records.nat.repository import COLUMNS
    from health_records.person.repository import insert_new_rows

    now = datetime.now(UTC).replace(microsecond=0)

    def record(report_id: str) -> tuple[object, ...]:
        return (report_id, "k" * 64, "negative", now, now, "南宁市第一人民医院", now)

    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    db = hr_app.state.runtime.db
    async with db.sessionmaker() as session:
        assert await insert_new_rows(
            session, NatResult.__table__, COLUMNS, [record(first)], "report_id"
        ) == {first}
        await session.commit()
    async with db.sessionmaker() as session:
        inserted = await insert_new_rows(
            session,
            NatResult.__table__,
            COLUMNS,
            [record(first), record(second)],
            "report_id",
            checked=True,
        )
        await session.commit()
    assert inserted == {second}
    async with db.sessionmaker() as session:
        assert (
            await insert_new_rows(
                session, NatResult.__table__, COLUMNS, [record(first), record(second)], "report_id"
            )
            == set()
        )


async def test_results_stored_meanwhile_are_duplicates_and_change_nothing(
    hr: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch looked up its report ids before a concurrent batch stored one of them (the
    # look-up is made to find none): that row is a duplicate, the batch is worked out again
    # without it, and its other content (a later positive result) changes nothing.
    from health_records.nat.repository import NatResultRepository

    person, other = new_id_number(), new_id_number()
    first = nat_row(person, hours_ago=30)
    assert (await push_nat(hr, [first])).json()["accepted"] == 1
    before = await status_of(hr, person)

    async def none_known(self: NatResultRepository, report_ids: list[str]) -> set[str]:
        return set()

    monkeypatch.setattr(NatResultRepository, "known", none_known)
    fresh = nat_row(person, hours_ago=1)
    stored = dict(
        first, result="positive", sample_time=fresh["sample_time"], report_time=fresh["report_time"]
    )
    response = await push_nat(hr, [stored, nat_row(other, result="positive")])
    assert response.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert await status_of(hr, person) == before
    assert (await status_of(hr, other))["color"] == "red"


async def test_a_batch_names_a_known_person_without_a_name(
    hr: httpx.AsyncClient, hr_app: FastAPI
) -> None:
    # A person known without a name (linked by the issuer first) gets the batch's name, sealed,
    # and the batch's result; one known with a name keeps it, and a row under another name is
    # refused (name_mismatch) and changes nothing.
    from sqlalchemy import select

    from hc_common.crypto import Sealer, decode_key
    from health_records.person.models import Person

    unnamed, named = new_id_number(), new_id_number()
    await subject_of(hr, unnamed)
    assert (await push_nat(hr, [nat_row(named, hours_ago=30)])).json()["accepted"] == 1
    rows = [dict(nat_row(unnamed), name="王小明"), dict(nat_row(named), name="别的名字")]
    before = await status_of(hr, named)
    body = (await push_nat(hr, rows)).json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "name_mismatch")]
    settings = hr_app.state.settings
    sealer = Sealer(decode_key(settings.data_key), b"person")
    db = hr_app.state.runtime.db
    names = {}
    async with db.sessionmaker() as session:
        for person in (await session.scalars(select(Person))).all():
            names[sealer.open(person.id_number_enc).decode()] = (
                sealer.open(person.name_enc).decode() if person.name_enc else None
            )
    assert names[unnamed] == "王小明"
    assert names[named] != "别的名字"
    assert (await status_of(hr, unnamed))["nat"]["sample_time"] == rows[0]["sample_time"]
    assert await status_of(hr, named) == before


async def test_a_person_created_meanwhile_is_updated_as_known(
    hr: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch did not find the person when it locked (a concurrent batch created them
    # since): the new person's insert skips them, and they are locked and updated as known
    # (one new version, the batch's result).
    from health_records.person.repository import PersonRepository

    person, other = new_id_number(), new_id_number()
    assert (await push_nat(hr, [nat_row(person, hours_ago=30)])).json()["accepted"] == 1
    before = await status_of(hr, person)
    real = PersonRepository.lock_states
    calls: list[int] = []

    async def first_finds_none(self: PersonRepository, keys: list[str]) -> list[tuple[Any, ...]]:
        calls.append(len(keys))
        return [] if len(calls) == 1 else await real(self, keys)

    monkeypatch.setattr(PersonRepository, "lock_states", first_finds_none)
    rows = [nat_row(person, hours_ago=2, result="positive"), nat_row(other)]
    assert (await push_nat(hr, rows)).json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert calls == [2, 1]
    after = await status_of(hr, person)
    assert after["version"] == before["version"] + 1
    assert after["subject_id"] == before["subject_id"]
    assert after["color"] == "red" and after["nat"]["sample_time"] == rows[0]["sample_time"]
    assert (await status_of(hr, other))["nat"]["result"] == "negative"
