"""A lab's batch of new persons only is stored without looking up or locking its persons
(PersonService.create_batch), when a sample of them is not known; the guess, when wrong (a
person or a report id the sample missed), writes nothing and the batch goes the general way,
with the same answer."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from hc_common.crypto import decode_key, keyed_hash
from health_records.nat.repository import NatResultRepository
from health_records.person.models import Person
from health_records.person.repository import PersonRepository
from health_records.testing import LAB, nat_row, new_id_number, status_of


async def push_nat(hr: httpx.AsyncClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = await hr.post("/v1/nat-results/batch", headers=LAB, json={"results": rows})
    assert response.status_code == 200, response.text
    return dict(response.json())


def codes(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [(row["index"], row["code"]) for row in body["rejected"]]


def count_locks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of keys of each lock_states call from now on."""
    real = PersonRepository.lock_states
    calls: list[int] = []

    async def counted(self: PersonRepository, keys: list[str]) -> list[tuple[Any, ...]]:
        calls.append(len(keys))
        return await real(self, keys)

    monkeypatch.setattr(PersonRepository, "lock_states", counted)
    return calls


def blind_persons_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's sample of its persons finds none of them, known or not."""

    async def none_known(self: PersonRepository, person_keys: list[str]) -> set[str]:
        return set()

    monkeypatch.setattr(PersonRepository, "known", none_known)


async def persons_named(hr_app: FastAPI, id_numbers: list[str]) -> int:
    """How many persons exist of these ID numbers."""
    pepper = decode_key(hr_app.state.settings.pepper)
    keys = [keyed_hash(pepper, "person:" + number) for number in id_numbers]
    async with hr_app.state.runtime.db.sessionmaker() as session:
        found = await session.scalar(
            select(func.count()).select_from(Person).where(Person.person_key.in_(keys))
        )
    return int(found or 0)


async def test_new_persons_are_created_without_a_lock(
    hr: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    locks = count_locks(monkeypatch)
    people = [new_id_number() for _ in range(40)]
    rows = [
        nat_row(p, result="positive" if at % 7 == 0 else "negative") for at, p in enumerate(people)
    ]
    older = nat_row(people[1], hours_ago=30, result="positive")
    body = await push_nat(hr, [*rows, rows[3], older])
    assert body == {"accepted": 41, "duplicates": 1, "rejected": []}
    assert locks == []  # nothing looked up under a lock
    monkeypatch.undo()
    for at, person in enumerate(people):
        status = await status_of(hr, person)
        assert status["version"] == 2  # made, then one change
        assert status["color"] == ("red" if at % 7 == 0 else "green")
        assert status["nat"]["sample_time"] == rows[at]["sample_time"]  # the latest one
    assert (await push_nat(hr, rows))["duplicates"] == len(rows)


async def test_a_known_person_the_sample_missed_is_updated_as_known(
    hr: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch is taken for one of new persons; the insert meets the known person, nothing
    # of the attempt stays, and the batch is stored the general way: the known person keeps
    # their subject and gets one new version, the new one is created, each result once.
    known, fresh = new_id_number(), new_id_number()
    assert (await push_nat(hr, [nat_row(known, hours_ago=30)]))["accepted"] == 1
    before = await status_of(hr, known)
    blind_persons_sample(monkeypatch)
    locks = count_locks(monkeypatch)
    rows = [nat_row(known, hours_ago=2, result="positive"), nat_row(fresh)]
    assert await push_nat(hr, rows) == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert locks == [2]  # the general way, once
    monkeypatch.undo()
    after = await status_of(hr, known)
    assert after["subject_id"] == before["subject_id"]
    assert after["version"] == before["version"] + 1
    assert after["color"] == "red" and after["nat"]["sample_time"] == rows[0]["sample_time"]
    assert (await status_of(hr, fresh))["version"] == 2
    assert (await push_nat(hr, rows))["duplicates"] == 2


async def test_a_known_persons_name_is_checked_when_the_sample_missed_them(
    hr: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first row sent for the known person is under another name: it alone is refused
    # (the name on file decides, not the batch's first row), as when the sample finds them.
    known, fresh = new_id_number(), new_id_number()
    assert (await push_nat(hr, [nat_row(known, hours_ago=30)]))["accepted"] == 1
    before = await status_of(hr, known)
    blind_persons_sample(monkeypatch)
    rows = [
        nat_row(known, hours_ago=1, result="positive", name="王小明"),
        nat_row(known, hours_ago=2),
        nat_row(fresh),
    ]
    body = await push_nat(hr, rows)
    assert body["accepted"] == 2 and codes(body) == [(0, "name_mismatch")]
    monkeypatch.undo()
    after = await status_of(hr, known)
    assert after["version"] == before["version"] + 1
    assert after["color"] == "green" and after["nat"]["sample_time"] == rows[1]["sample_time"]


async def test_a_known_report_the_sample_missed_is_a_duplicate_and_makes_no_person(
    hr: httpx.AsyncClient, hr_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A report id stored before, sent again under a new person's ID number, among rows of new
    # persons: the attempt meets it and writes nothing; the batch is stored knowing it (its
    # report ids all looked up once more, no second attempt), and the duplicate creates no
    # person.
    first = nat_row(new_id_number())
    assert (await push_nat(hr, [first]))["accepted"] == 1
    looked_up: list[int] = []
    real = NatResultRepository.known

    async def blind_first(self: NatResultRepository, report_ids: list[str]) -> set[str]:
        looked_up.append(len(report_ids))
        return set() if len(looked_up) == 1 else await real(self, report_ids)

    monkeypatch.setattr(NatResultRepository, "known", blind_first)
    stranger, fresh = new_id_number(), new_id_number()
    rows = [dict(first, id_number=stranger), nat_row(fresh, result="positive")]
    assert await push_nat(hr, rows) == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert looked_up == [2, 2]
    monkeypatch.undo()
    assert await persons_named(hr_app, [stranger]) == 0
    assert (await status_of(hr, fresh))["color"] == "red"


async def test_a_name_differing_within_the_batch_goes_the_general_way(
    hr: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new person named by their first row; their other row under another name is refused.
    locks = count_locks(monkeypatch)
    person = new_id_number()
    rows = [nat_row(person, hours_ago=3), nat_row(person, hours_ago=1, name="王小明")]
    body = await push_nat(hr, rows)
    assert body["accepted"] == 1 and codes(body) == [(1, "name_mismatch")]
    assert locks  # looked up and locked: the general way
    monkeypatch.undo()
    assert (await status_of(hr, person))["nat"]["sample_time"] == rows[0]["sample_time"]


async def test_the_same_new_persons_sent_twice_at_once_are_created_once(
    hr: httpx.AsyncClient, hr_app: FastAPI
) -> None:
    # Two replicas given one batch of new persons at once: one stores it, the other's insert
    # waits for it and then goes the general way, where every row is a duplicate.
    people = [new_id_number() for _ in range(30)]
    rows = [nat_row(p) for p in people]
    bodies = await asyncio.gather(push_nat(hr, rows), push_nat(hr, rows))
    assert sorted((b["accepted"], b["duplicates"]) for b in bodies) == [(0, 30), (30, 0)]
    assert await persons_named(hr_app, people) == 30
    for person in people:
        assert (await status_of(hr, person))["version"] == 2
