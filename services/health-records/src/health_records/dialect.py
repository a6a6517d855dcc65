"""Bulk statements for the backend in use: on PostgreSQL one statement over `unnest` of one
array a column (a batch of 10,000 rows is one round trip, no per-row parameters); on SQLite
(the local default) the portable executemany forms."""

import zlib
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, Table, bindparam, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

# Columns of a bulk statement: name -> one value a row (all lists of the same length).
Columns = dict[str, list[Any]]


def insert_ignore(session: AsyncSession, table: Table) -> Any:
    """An INSERT that skips rows whose unique key exists already (a bulk, idempotent insert)."""
    name = session.get_bind().dialect.name
    module = postgresql if name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _pg_array(table: Table, column: str) -> str:
    kind = table.c[column].type
    if isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime):
        return "timestamptz[]"
    if isinstance(kind, BigInteger):
        return "int8[]"
    if isinstance(kind, Integer):
        return "int4[]"
    if isinstance(kind, LargeBinary):
        return "bytea[]"
    return "text[]"


def _unnest(table: Table, names: Sequence[str]) -> str:
    return "unnest(" + ", ".join(f"CAST(:{n} AS {_pg_array(table, n)})" for n in names) + ")"


def _rows(columns: Columns) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


async def insert_ignore_many(
    session: AsyncSession, table: Table, columns: Columns, returning: str
) -> set[Any]:
    """Insert the rows, skipping those whose unique key exists already; returns the
    `returning` column of the rows inserted."""
    if not columns or not next(iter(columns.values())):
        return set()
    conn = await session.connection()
    if is_postgres(session):
        names = list(columns)
        statement = text(
            f"INSERT INTO {table.name} ({', '.join(names)}) "
            f"SELECT * FROM {_unnest(table, names)} "
            f"ON CONFLICT DO NOTHING RETURNING {returning}"
        )
        result = await conn.execute(statement, columns)
    else:
        result = await conn.execute(
            insert_ignore(session, table).returning(table.c[returning]), _rows(columns)
        )
    return set(result.scalars().all())


async def update_many(session: AsyncSession, table: Table, key: str, columns: Columns) -> None:
    """Set the given columns of each row found by `key` (one of the columns) to its values."""
    if not columns or not columns[key]:
        return
    conn = await session.connection()
    values = [n for n in columns if n != key]
    if is_postgres(session):
        await _pg_update_many(session, table, key, columns)
        return
    statement = (
        update(table)
        .where(table.c[key] == bindparam("b_" + key))
        .values({n: bindparam("b_" + n) for n in values})
    )
    await conn.execute(statement, [{"b_" + n: v for n, v in row.items()} for row in _rows(columns)])


# --- PostgreSQL bulk paths: COPY and one JSON parameter for a list of keys -------------------
# asyncpg encodes an array parameter element by element with abstract-class checks (about a
# microsecond an element: a quarter of a second for a batch's columns); COPY's binary rows and
# a list of keys as one JSON text cost a fraction of that.


async def pg_driver(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction (begun if needed, so
    that what runs on the driver is part of it)."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        await conn.execute(text("SELECT 1"))  # SQLAlchemy begins its transaction lazily
    return driver


def json_list(values: Sequence[Any]) -> str:
    return orjson.dumps(values).decode()


async def pg_existing(
    session: AsyncSession, table: Table, key: str, values: Sequence[str]
) -> set[str]:
    """The `values` of the text column `key` found in `table` (one statement)."""
    if not values:
        return set()
    driver = await pg_driver(session)
    rows = await driver.fetch(
        f"SELECT {key} FROM {table.name} WHERE {key} = ANY(ARRAY("
        "SELECT json_array_elements_text($1::json)))",
        json_list(values),
    )
    return {row[0] for row in rows}


async def _pg_update_many(session: AsyncSession, table: Table, key: str, columns: Columns) -> None:
    """update_many on PostgreSQL: the rows COPYed into a temporary table of the columns' types
    (one a connection and column set, emptied at each commit), then one UPDATE ... FROM it."""
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
        import asyncpg

        if not checked:
            known = await pg_existing(session, table, key, [r[at] for r in records])
            if known:
                records = [r for r in records if r[at] not in known]
                if not records:
                    return set()
        driver = await pg_driver(session)
        try:
            async with driver.transaction():  # a savepoint inside the session's transaction
                await driver.copy_records_to_table(table.name, records=records, columns=list(names))
            return {r[at] for r in records}
        except asyncpg.UniqueViolationError:
            pass
    columns = {
        name: list(values) for name, values in zip(names, zip(*records, strict=True), strict=True)
    }
    return await insert_ignore_many(session, table, columns, key)


async def append_rows(
    session: AsyncSession, table: Table, names: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    """Insert rows that cannot conflict (fresh keys), in order: COPY on PostgreSQL."""
    if not records:
        return
    if is_postgres(session):
        driver = await pg_driver(session)
        await driver.copy_records_to_table(table.name, records=records, columns=list(names))
        return
    conn = await session.connection()
    await conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in records])
