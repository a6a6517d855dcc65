"""The binary COPY rows written by health_records.person.copy: what PostgreSQL reads back is
what asyncpg's own COPY would have stored (values of every column type a batch writes, NULLs,
long texts, naive and aware times), and what it cannot write is left to asyncpg."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Column, DateTime, Float, MetaData, String, Table

from hc_common.db import UTCDateTime, is_postgres
from health_records.person.copy import binary_rows, encoders
from health_records.person.models import Person
from health_records.person.repository import copy_rows, pg_driver

NOW = datetime(2026, 11, 29, 8, 0, 1, 123456, tzinfo=UTC)


# A person's row as the tests write it, but for the key and the subject id (made from the key).
_DEFAULTS: dict[str, Any] = {
    "id_number_enc": b"\x00\xff" * 300,  # a field longer than the lengths made once
    "name_enc": None,
    "name_key": None,
    "color": "green",
    "authority_color": "green",
    "color_reason": None,
    "nat_result": None,
    "nat_sample_time": None,
    "nat_report_time": None,
    "vaccine_doses": 0,
    "last_dose_at": None,
    "version": 1,
    "updated_at": NOW,
}
COLUMNS = ("person_key", "subject_id", *_DEFAULTS)


def person(key: str, **values: Any) -> tuple[Any, ...]:
    row = {"person_key": key, "subject_id": key[-26:], **_DEFAULTS, **values}
    return tuple(row[column] for column in COLUMNS)


def test_a_column_type_not_written_here_leaves_the_rows_to_asyncpg() -> None:
    table = Table("t", MetaData(), Column("a", String), Column("b", Float))
    assert encoders(table, ["a"]) is not None
    assert encoders(table, ["a", "b"]) is None
    aware = Table("u", MetaData(), Column("at", UTCDateTime), Column("naive", DateTime))
    assert encoders(aware, ["at"]) is not None
    assert encoders(aware, ["naive"]) is None


def test_a_value_not_of_its_columns_type_leaves_the_rows_to_asyncpg() -> None:
    columns = encoders(Person.__table__, COLUMNS)
    assert columns is not None
    assert binary_rows(columns, [person("a" * 64)]) is not None
    assert binary_rows(columns, [person("a" * 64, version="2")]) is None
    assert binary_rows(columns, [person("a" * 64, updated_at="today")]) is None
    assert binary_rows(columns, [person("a" * 64, vaccine_doses=2**40)]) is None


@pytest.mark.postgres
async def test_postgresql_reads_back_what_asyncpg_would_store(
    hr: httpx.AsyncClient, hr_app: FastAPI
) -> None:
    db = hr_app.state.runtime.db
    async with db.sessionmaker() as session:
        assert is_postgres(session), "binary COPY is PostgreSQL's: run with make test-pg"
        east = timezone(timedelta(hours=8))
        rows = [
            person(
                f"{n:064d}",
                name_enc=b"sealed" * n,
                name_key="n" * 64,
                color="red",
                color_reason="行程\t卡\n\\ 东" * 40,  # longer than 512 bytes, with COPY's
                nat_result="positive",  # text-format specials (nothing to escape here)
                nat_sample_time=NOW - timedelta(hours=n),
                nat_report_time=(NOW - timedelta(hours=1)).astimezone(east),
                vaccine_doses=n,
                last_dose_at=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                version=2**40 + n,
            )
            for n in range(1, 7)
        ] + [person(f"{n:064d}") for n in range(7, 12)]
        driver = await pg_driver(session)
        await driver.execute(
            "CREATE TEMPORARY TABLE copied (LIKE persons INCLUDING ALL) ON COMMIT DROP"
        )
        await copy_rows(driver, Person.__table__, COLUMNS, rows, into="copied")
        await copy_rows(driver, Person.__table__, COLUMNS, iter(rows), stream=True)
        ours = await driver.fetch(f"SELECT {', '.join(COLUMNS)} FROM copied ORDER BY 1")
        stored = await driver.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM persons WHERE person_key = ANY($1) ORDER BY 1",
            [row[0] for row in rows],
        )
        await driver.execute("TRUNCATE copied")
        await driver.copy_records_to_table("copied", records=rows, columns=list(COLUMNS))
        theirs = await driver.fetch(f"SELECT {', '.join(COLUMNS)} FROM copied ORDER BY 1")
        await session.rollback()
    assert [tuple(r) for r in ours] == [tuple(r) for r in theirs] == [tuple(r) for r in stored]
    assert [tuple(r) for r in ours][:1] == [
        tuple(value.astimezone(UTC) if isinstance(value, datetime) else value for value in rows[0])
    ]
