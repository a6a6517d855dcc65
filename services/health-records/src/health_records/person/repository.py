"""Every query on persons, and the bulk statements a batch's rows go in with (also those of
the NAT and vaccination repositories); never commits.

On PostgreSQL a batch's rows travel as COPY and its keys as one JSON text (asyncpg encodes an
array parameter element by element, about a microsecond an element: a quarter of a second for
a batch's columns); on SQLite (the local default) as the portable executemany forms."""

import zlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.events.outbox import mark_events_staged
from health_records.db import OutboxEvent
from health_records.person.models import CodeChange, Person

# The columns a batch reads to work out a person's new status.
STATE_COLUMNS = (
    "person_key",
    "subject_id",
    "authority_color",
    "color_reason",
    "color",
    "nat_result",
    "nat_sample_time",
    "nat_report_time",
    "vaccine_doses",
    "last_dose_at",
    "version",
    "updated_at",
)
# The columns of an outbox row given to add_events, in order.
OUTBOX_COLUMNS = ("event_id", "subject", "payload", "created_at")


class PersonRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_key(self, person_key: str, *, for_update: bool = False) -> Person | None:
        query = select(Person).where(Person.person_key == person_key)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def by_subject(self, subject_id: str) -> Person | None:
        return await self.session.scalar(select(Person).where(Person.subject_id == subject_id))

    async def by_subjects(self, subject_ids: list[str]) -> list[Person]:
        return list(
            (
                await self.session.scalars(select(Person).where(Person.subject_id.in_(subject_ids)))
            ).all()
        )

    def add(self, row: Person | CodeChange) -> None:
        self.session.add(row)

    async def lock_states(self, person_keys: list[str]) -> list[tuple[Any, ...]]:
        """The status columns (STATE_COLUMNS, then whether the name is missing) of the persons
        that exist among `person_keys`, locked for this transaction in key order (so two
        batches lock shared persons in the same order). Plain rows, no ORM objects."""
        if not person_keys:
            return []
        if is_postgres(self.session):  # the keys as one JSON text, rows straight from asyncpg
            driver = await pg_driver(self.session)
            return [
                tuple(row)
                for row in await driver.fetch(
                    f"SELECT {', '.join(STATE_COLUMNS)}, name_enc IS NULL FROM persons "
                    "WHERE person_key = ANY(ARRAY(SELECT json_array_elements_text($1::json))) "
                    "ORDER BY person_key FOR UPDATE",
                    json_list(person_keys),
                )
            ]
        table = Person.__table__
        query = (
            select(*(table.c[c] for c in STATE_COLUMNS), table.c.name_enc.is_(None))
            .where(table.c.person_key.in_(person_keys))
            .order_by(table.c.person_key)
            .with_for_update()
        )
        conn = await self.session.connection()
        return [tuple(row) for row in await conn.execute(query)]

    async def insert_new(self, names: Sequence[str], records: list[tuple[Any, ...]]) -> set[str]:
        """Insert persons (tuples in the order of `names`) that lock_states has just not found;
        returns the keys inserted (one created meanwhile by another transaction is left as it
        is and not returned)."""
        return await insert_new_rows(
            self.session, Person.__table__, names, records, "person_key", checked=True
        )

    async def update_columns(self, columns: dict[str, list[Any]]) -> None:
        """Set columns of many persons in one statement: `columns` maps each column to one
        value a person (lists of the same length), `person_key` names the persons."""
        if not columns["person_key"]:
            return
        table = Person.__table__
        if is_postgres(self.session):
            await _pg_update_many(self.session, table, "person_key", columns)
            return
        names = list(columns)
        statement = (
            update(table)
            .where(table.c.person_key == bindparam("b_person_key"))
            .values({n: bindparam("b_" + n) for n in names if n != "person_key"})
        )
        conn = await self.session.connection()
        await conn.execute(
            statement,
            [
                {"b_" + n: v for n, v in zip(names, row, strict=True)}
                for row in zip(*columns.values(), strict=True)
            ],
        )

    async def add_events(self, records: list[tuple[Any, ...]]) -> None:
        """Stage outbox rows (tuples of OUTBOX_COLUMNS, fresh event ids) in this transaction,
        in order; the relay is woken once it commits."""
        if not records:
            return
        await append_rows(self.session, OutboxEvent.__table__, OUTBOX_COLUMNS, records)
        mark_events_staged(self.session)


# --- Bulk statements --------------------------------------------------------------------------


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def pg_driver(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction (begun if needed, so
    that what runs on the driver is part of it)."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "the session's connection is open"
    if not driver.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")  # SQLAlchemy begins its transaction lazily
    return driver


def json_list(values: Sequence[Any]) -> str:
    return orjson.dumps(values).decode()


async def insert_new_rows(
    session: AsyncSession,
    table: Table,
    names: Sequence[str],
    records: list[tuple[Any, ...]],
    key: str,
    *,
    checked: bool = False,
) -> set[Any]:
    """Insert `records` (tuples in the order of `names`), skipping those whose unique `key`
    exists already; returns the keys inserted.

    On PostgreSQL the known keys are looked up first (unless the caller has just done so:
    `checked`) and the rest is COPYed in a savepoint; a unique violation there (a concurrent
    transaction inserted one of them meanwhile) rolls the savepoint back and inserts them with
    ON CONFLICT DO NOTHING instead. On SQLite: one INSERT ... ON CONFLICT DO NOTHING."""
    if not records:
        return set()
    at = list(names).index(key)
    if is_postgres(session):
        if not checked:
            known = await pg_existing(session, table, key, [r[at] for r in records])
            records = [r for r in records if r[at] not in known]
            if not records:
                return set()
        driver = await pg_driver(session)
        try:
            async with driver.transaction():  # a savepoint inside the session's transaction
                await driver.copy_records_to_table(table.name, records=records, columns=list(names))
            return {r[at] for r in records}
        except asyncpg.UniqueViolationError:
            # A concurrent batch stored one of these keys after the look-up: the savepoint
            # is rolled back, and the insert below keeps whichever rows are still new.
            pass
    dialect = postgresql if is_postgres(session) else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing().returning(table.c[key])
    conn = await session.connection()
    result = await conn.execute(statement, [dict(zip(names, r, strict=True)) for r in records])
    return set(result.scalars().all())


async def pg_existing(
    session: AsyncSession, table: Table, key: str, values: Sequence[str]
) -> set[str]:
    """The `values` of the text column `key` found in `table` (one statement, PostgreSQL)."""
    if not values:
        return set()
    driver = await pg_driver(session)
    rows = await driver.fetch(
        f"SELECT {key} FROM {table.name} WHERE {key} = ANY(ARRAY("
        "SELECT json_array_elements_text($1::json)))",
        json_list(values),
    )
    return {row[0] for row in rows}


async def append_rows(
    session: AsyncSession, table: Table, names: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    """Insert rows that cannot conflict (fresh keys), in order: COPY on PostgreSQL."""
    if is_postgres(session):
        driver = await pg_driver(session)
        await driver.copy_records_to_table(table.name, records=records, columns=list(names))
        return
    conn = await session.connection()
    await conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in records])


async def _pg_update_many(
    session: AsyncSession, table: Table, key: str, columns: dict[str, list[Any]]
) -> None:
    """Set the columns of the rows found by `key` on PostgreSQL: the rows COPYed into a
    temporary table of the columns' types (one a connection and column set, emptied at each
    commit), then one UPDATE ... FROM it."""
    names = list(columns)
    scratch = f"hr_update_{table.name}_{zlib.crc32(','.join(names).encode()):08x}"
    driver = await pg_driver(session)
    await driver.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} ON COMMIT DELETE ROWS AS "
        f"SELECT {', '.join(names)} FROM {table.name} WITH NO DATA; TRUNCATE {scratch}"
    )
    await driver.copy_records_to_table(
        scratch, records=list(zip(*columns.values(), strict=True)), columns=names
    )
    await driver.execute(
        f"UPDATE {table.name} AS t SET "
        f"{', '.join(f'{n} = u.{n}' for n in names if n != key)} "
        f"FROM {scratch} AS u WHERE t.{key} = u.{key}"
    )
