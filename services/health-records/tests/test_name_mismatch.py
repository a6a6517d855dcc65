"""A batch row under a name that is not the one on file for its ID number is refused alone
(`name_mismatch`), on both batch endpoints and at the issuer's subject request; names compare
after NFKC and trimming."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from hc_common.clock import utcnow
from hc_common.crypto import Sealer, decode_key
from hc_common.ids import new_id
from health_records.person.models import Person
from health_records.testing import (
    LAB,
    SERVICE,
    SITE,
    nat_row,
    new_id_number,
    status_of,
    subject_of,
    vaccination_row,
)


class Endpoint:
    """One of the two batch endpoints: its path, key, rows and what a row changes."""

    def __init__(
        self, path: str, key: str, headers: dict[str, str], row: Callable[..., dict[str, Any]]
    ) -> None:
        self.path, self.key, self.headers, self.row = path, key, headers, row

    async def push(
        self, hr: httpx.AsyncClient, rows: list[dict[str, Any]], **headers: str
    ) -> dict[str, Any]:
        response = await hr.post(
            self.path, headers={**self.headers, **headers}, json={self.key: rows}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def first(self, id_number: str, name: str) -> dict[str, Any]:
        """A row that gives the person data."""
        return self.row(id_number, name=name)

    def later(self, id_number: str, name: str) -> dict[str, Any]:
        """A row that would change the person's status after `first`."""
        if self.key == "results":
            return nat_row(id_number, name=name, hours_ago=1, result="positive")
        return vaccination_row(id_number, name=name, dose=2, days_ago=10)


NAT = Endpoint("/v1/nat-results/batch", "results", LAB, nat_row)
VACCINATION = Endpoint("/v1/vaccinations/batch", "records", SITE, vaccination_row)


@pytest.fixture(params=[NAT, VACCINATION], ids=["nat", "vaccination"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    return request.param  # type: ignore[no-any-return]


def codes(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [(row["index"], row["code"]) for row in body["rejected"]]


async def test_a_row_under_another_name_is_refused_alone(
    hr: httpx.AsyncClient, endpoint: Endpoint
) -> None:
    person, other = new_id_number(), new_id_number()
    assert (await endpoint.push(hr, [endpoint.first(person, "李秀华")]))["accepted"] == 1
    before = await status_of(hr, person)
    rows = [endpoint.first(other, "张三"), endpoint.later(person, "王小明")]
    body = await endpoint.push(hr, rows)
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert codes(body) == [(1, "name_mismatch")]
    assert body["rejected"][0]["detail"] == "姓名与身份证号码登记的姓名不一致"
    assert person not in str(body)
    # The refused row changed nothing (no positive result, no dose), the other row is kept.
    assert await status_of(hr, person) == before
    assert (await status_of(hr, other))["version"] == 2
    # Not stored either: the same row under the right name is accepted later.
    again = dict(rows[1], name="李秀华")
    assert (await endpoint.push(hr, [again]))["accepted"] == 1
    assert (await status_of(hr, person))["version"] == before["version"] + 1


async def test_the_detail_is_english_on_request(hr: httpx.AsyncClient, endpoint: Endpoint) -> None:
    person = new_id_number()
    await endpoint.push(hr, [endpoint.first(person, "李秀华")])
    body = await endpoint.push(
        hr, [endpoint.later(person, "王小明")], **{"Accept-Language": "en-US,en;q=0.9"}
    )
    assert codes(body) == [(0, "name_mismatch")]
    assert body["rejected"][0]["detail"] == (
        "The name differs from the one on file for this ID number"
    )


@pytest.mark.parametrize(
    ("on_file", "sent"),
    [
        ("ZHANG San", "ＺＨＡＮＧ　Ｓａｎ"),  # full-width letters and space
        ("ＺＨＡＮＧ Ｓａｎ", "ZHANG San"),
        ("李秀华", " 李秀华\u3000"),  # surrounding spaces, an ideographic one too
        ("买买提·艾力", "买买提·艾力 "),
    ],
)
async def test_width_forms_and_surrounding_spaces_are_the_same_name(
    hr: httpx.AsyncClient, endpoint: Endpoint, on_file: str, sent: str
) -> None:
    person = new_id_number()
    assert (await endpoint.push(hr, [endpoint.first(person, on_file)]))["accepted"] == 1
    body = await endpoint.push(hr, [endpoint.later(person, sent)])
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}


async def test_a_person_without_a_name_takes_the_batch_name(
    hr: httpx.AsyncClient, endpoint: Endpoint
) -> None:
    person = new_id_number()
    await subject_of(hr, person)  # known by the ID number only (the issuer's call, no name)
    assert (await endpoint.push(hr, [endpoint.first(person, "王小明")]))["accepted"] == 1
    body = await endpoint.push(hr, [endpoint.later(person, "李秀华")])
    assert codes(body) == [(0, "name_mismatch")]
    assert (await endpoint.push(hr, [endpoint.later(person, "王小明")]))["accepted"] == 1


async def test_a_new_person_is_named_by_their_first_row_as_sent(
    hr: httpx.AsyncClient, endpoint: Endpoint
) -> None:
    # The row sent first names the person, whatever the order of the ids; the batch's other
    # rows for them under another name are refused, those under the same name kept.
    person = new_id_number()
    first = endpoint.first(person, "王小明")
    second = endpoint.later(person, "李秀华")
    third = endpoint.later(person, "王小明")
    id_key = "report_id" if endpoint is NAT else "record_id"
    first[id_key], second[id_key], third[id_key] = "z-" + new_id(), "a-" + new_id(), "m-" + new_id()
    if endpoint is VACCINATION:
        third["dose_number"] = 3
    body = await endpoint.push(hr, [first, second, third])
    assert body["accepted"] == 2 and codes(body) == [(1, "name_mismatch")]
    assert (await status_of(hr, person))["version"] == 2  # one new version for the batch
    body = await endpoint.push(hr, [endpoint.later(person, "李秀华")])
    assert codes(body) == [(0, "name_mismatch")]


async def test_a_duplicate_is_a_duplicate_whatever_its_name(
    hr: httpx.AsyncClient, endpoint: Endpoint
) -> None:
    person = new_id_number()
    row = endpoint.first(person, "李秀华")
    assert (await endpoint.push(hr, [row]))["accepted"] == 1
    body = await endpoint.push(hr, [dict(row, name="王小明")])
    assert body == {"accepted": 0, "duplicates": 1, "rejected": []}


async def _legacy_person(hr_app: FastAPI, id_number: str, name: str) -> None:
    """A person named before names had keys: the sealed name, no key."""
    from health_records.person.service import PersonService

    settings = hr_app.state.settings
    sealer = Sealer(decode_key(settings.data_key), b"person")
    service = PersonService(None, sealer, decode_key(settings.pepper))  # type: ignore[arg-type]
    async with hr_app.state.runtime.db.sessionmaker() as session:
        session.add(
            Person(
                person_key=service.person_key(id_number),
                subject_id=new_id(),
                id_number_enc=sealer.seal(id_number.encode()),
                name_enc=sealer.seal(name.encode()),
                name_key=None,
                color="green",
                authority_color="green",
                version=1,
                vaccine_doses=0,
                updated_at=utcnow(),
            )
        )
        await session.commit()


async def _name_key(hr_app: FastAPI, subject_id: str) -> str | None:
    async with hr_app.state.runtime.db.sessionmaker() as session:
        person = await session.scalar(select(Person).where(Person.subject_id == subject_id))
        assert person is not None
        return person.name_key


async def test_a_person_named_before_keys_is_checked_and_gets_the_key(
    hr: httpx.AsyncClient, hr_app: FastAPI, endpoint: Endpoint
) -> None:
    person, other = new_id_number(), new_id_number()
    await _legacy_person(hr_app, person, "李秀华")
    await _legacy_person(hr_app, other, "张三")
    subject = await subject_of(hr, person)
    assert await _name_key(hr_app, subject) is None
    body = await endpoint.push(
        hr, [endpoint.first(person, "王小明"), endpoint.first(other, "ＺＨＡＮＧ")]
    )
    assert codes(body) == [(0, "name_mismatch"), (1, "name_mismatch")]
    body = await endpoint.push(hr, [endpoint.first(person, "李秀华")])
    assert body["accepted"] == 1
    # The key is written with the batch: the next batch compares it without opening the name.
    assert await _name_key(hr_app, subject) is not None
    assert codes(await endpoint.push(hr, [endpoint.later(person, "王小明")])) == [
        (0, "name_mismatch")
    ]


async def test_a_person_created_meanwhile_under_another_name_is_refused(
    hr: httpx.AsyncClient, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch did not find the person when it locked (a concurrent request created them,
    # under another name, since): its rows for them are taken back and refused.
    from health_records.person.repository import PersonRepository

    person, other = new_id_number(), new_id_number()
    assert (await endpoint.push(hr, [endpoint.first(person, "李秀华")]))["accepted"] == 1
    before = await status_of(hr, person)
    real = PersonRepository.lock_states
    calls: list[int] = []

    async def first_finds_none(self: PersonRepository, keys: list[str]) -> list[tuple[Any, ...]]:
        calls.append(len(keys))
        return [] if len(calls) == 1 else await real(self, keys)

    monkeypatch.setattr(PersonRepository, "lock_states", first_finds_none)
    rows = [endpoint.first(other, "张三"), endpoint.later(person, "王小明")]
    body = await endpoint.push(hr, rows)
    assert body["accepted"] == 1 and codes(body) == [(1, "name_mismatch")]
    monkeypatch.undo()
    assert await status_of(hr, person) == before
    assert (await endpoint.push(hr, [dict(rows[1], name="李秀华")]))["accepted"] == 1


async def test_the_issuers_subject_request_under_another_name_is_refused(
    hr: httpx.AsyncClient,
) -> None:
    person, unnamed = new_id_number(), new_id_number()
    await NAT.push(hr, [NAT.first(person, "李秀华")])

    async def ask(id_number: str, name: str, **headers: str) -> httpx.Response:
        return await hr.post(
            "/internal/v1/subjects",
            headers={**SERVICE, **headers},
            json={"id_number": id_number, "name": name},
        )

    subject = await subject_of(hr, person)
    refused = await ask(person, "王小明")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "name_mismatch"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "不一致" in refused.json()["detail"]
    english = await ask(person, "王小明", **{"Accept-Language": "en"})
    assert english.json()["title"] == "The name differs from the one on file for this ID number"
    same = await ask(person, " 李秀华 ")
    assert same.status_code == 200 and same.json()["subject_id"] == subject
    # A person known without a name takes the one the issuer gives.
    assert (await ask(unnamed, "王小明")).status_code == 200
    assert (await ask(unnamed, "李秀华")).json()["code"] == "name_mismatch"
    assert codes(await NAT.push(hr, [NAT.first(unnamed, "李秀华")])) == [(0, "name_mismatch")]
