"""Bulk statements for the backend in use: on PostgreSQL one statement over `unnest` of one
array a column (a batch of 10,000 rows is one round trip, no per-row parameters); on SQLite
(the local default) the portable executemany forms."""

from collections.abc import Sequence
from typing import Any

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
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(),
                                                                        strict=True)]


async def insert_ignore_many(session: AsyncSession, table: Table, columns: Columns,
                             returning: str) -> set[Any]:
    """Insert the rows, skipping those whose unique key exists already; returns the
    `returning` column of the rows inserted."""
    if not columns or not next(iter(columns.values())):
        return set()
    conn = await session.connection()
    if is_postgres(session):
        names = list(columns)
        statement = text(f"INSERT INTO {table.name} ({', '.join(names)}) "
                         f"SELECT * FROM {_unnest(table, names)} "
                         f"ON CONFLICT DO NOTHING RETURNING {returning}")
        result = await conn.execute(statement, columns)
    else:
        result = await conn.execute(insert_ignore(session, table).returning(table.c[returning]),
                                    _rows(columns))
    return set(result.scalars().all())


async def update_many(session: AsyncSession, table: Table, key: str, columns: Columns) -> None:
    """Set the given columns of each row found by `key` (one of the columns) to its values."""
    if not columns or not columns[key]:
        return
    conn = await session.connection()
    values = [n for n in columns if n != key]
    if is_postgres(session):
        names = list(columns)
        statement = text(
            f"UPDATE {table.name} AS t SET {', '.join(f'{n} = u.{n}' for n in values)} "
            f"FROM {_unnest(table, names)} AS u({', '.join(names)}) "
            f"WHERE t.{key} = u.{key}")
        await conn.execute(statement, columns)
        return
    statement = update(table).where(table.c[key] == bindparam("b_" + key)).values(
        {n: bindparam("b_" + n) for n in values})
    await conn.execute(statement, [{"b_" + n: v for n, v in row.items()}
                                   for row in _rows(columns)])
