"""Every query on persons, and the bulk statements a batch's rows go in with (also those of
the NAT and vaccination repositories); never commits.

On PostgreSQL a batch's rows travel as COPY and its keys as one JSON text (asyncpg encodes an
array parameter element by element, about a microsecond an element: a quarter of a second for
a batch's columns); on SQLite (the local default) as the portable executemany forms."""

import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, nullcontext
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Table, bindparam, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.db import is_postgres
from hc_common.events.outbox import group_events, mark_events_staged
from health_records.db import OutboxEvent
from health_records.person.copy import binary_rows, binary_stream, encoders
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
)
# Then what a batch needs of the name: its key (NULL for a person named before keys were kept),
# the sealed name only where there is no key (those few are opened to make it), and whether the
# person has no name at all.
_PG_NAME_COLUMNS = "name_key, CASE WHEN name_key IS NULL THEN name_enc END, name_enc IS NULL"
# Rows of an iterator COPYed at a time (person.service's slice of a batch's work).
_STREAM_SLICE = 500
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

    async def lock_states(self, person_keys: list[str]) -> Sequence[Sequence[Any]]:
        """The status columns (STATE_COLUMNS, then NAME_COLUMNS) of the persons that exist
        among `person_keys`, locked for this transaction in key order (so two batches lock
        shared persons in the same order). Plain rows (asyncpg's records as they come), no
        ORM objects."""
        if not person_keys:
            return []
        if is_postgres(self.session):  # the keys as one JSON text, rows straight from asyncpg
            driver = await pg_driver(self.session)
            rows: Sequence[Sequence[Any]] = await driver.fetch(
                f"SELECT {', '.join(STATE_COLUMNS)}, {_PG_NAME_COLUMNS} FROM persons "
                "WHERE person_key = ANY(ARRAY(SELECT json_array_elements_text($1::json))) "
                "ORDER BY person_key FOR UPDATE",
                json_list(person_keys),
            )
            return rows
        table = Person.__table__
        query = (
            select(
                *(table.c[c] for c in STATE_COLUMNS),
                table.c.name_key,
                case((table.c.name_key.is_(None), table.c.name_enc)),
                table.c.name_enc.is_(None),
            )
            .where(table.c.person_key.in_(person_keys))
            .order_by(table.c.person_key)
            .with_for_update()
        )
        conn = await self.session.connection()
        return [tuple(row) for row in await conn.execute(query)]

    async def insert_new(
        self, names: Sequence[str], records: Sequence[tuple[Any, ...]]
    ) -> set[str]:
        """Insert persons (tuples in the order of `names`) that lock_states has just not found;
        returns the keys inserted (one created meanwhile by another transaction is left as it
        is and not returned)."""
        return await insert_new_rows(
            self.session, Person.__table__, names, records, "person_key", checked=True
        )

    async def known(self, person_keys: list[str]) -> set[str]:
        """The keys of `person_keys` whose person exists (one statement, no lock)."""
        return await existing(self.session, Person.__table__, "person_key", person_keys)

    async def insert_all(self, names: Sequence[str], records: Iterable[tuple[Any, ...]]) -> None:
        """Insert persons (tuples in the order of `names`), none of whom may exist: a COPY on
        PostgreSQL that takes `records` as they are made (an iterator is sent in chunks while
        the rest is made), one INSERT on SQLite. A person who exists, or is being inserted by
        a concurrent transaction (the unique key waits for it), fails the statement
        (asyncpg.UniqueViolationError, IntegrityError): the caller's savepoint is rolled back
        then."""
        await append_rows(self.session, Person.__table__, names, records, stream=True)

    async def update_columns(self, columns: dict[str, list[Any]]) -> None:
        """Set columns of many persons in one statement: `columns` maps each column to one
        value a person (lists of the same length), `person_key` names the persons."""
        await self.update_rows(tuple(columns), list(zip(*columns.values(), strict=True)))

    async def update_rows(self, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Set columns of many persons in one statement: `rows` holds one tuple a person of
        the columns `names`, among them `person_key`, which names the person."""
        if not rows:
            return
        table = Person.__table__
        if is_postgres(self.session):
            await _pg_update_many(self.session, table, "person_key", names, rows)
            return
        statement = (
            update(table)
            .where(table.c.person_key == bindparam("b_person_key"))
            .values({n: bindparam("b_" + n) for n in names if n != "person_key"})
        )
        conn = await self.session.connection()
        keys = ["b_" + n for n in names]
        await conn.execute(statement, [dict(zip(keys, row, strict=True)) for row in rows])

    async def add_events(self, records: list[tuple[Any, ...]]) -> None:
        """Stage events (tuples of OUTBOX_COLUMNS, fresh event ids) in this transaction, in
        order, as grouped outbox rows (a row for up to 1,000 events of a subject: the relay
        publishes each as its own message); the relay is woken once it commits."""
        await self.add_outbox_rows(group_events(records))

    async def add_outbox_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Stage outbox rows as group_events makes them (for a caller that grouped its events
        while a statement ran); the relay is woken once this transaction commits."""
        if not rows:
            return
        await append_rows(self.session, OutboxEvent.__table__, OUTBOX_COLUMNS, rows)
        mark_events_staged(self.session)


# --- Bulk statements --------------------------------------------------------------------------


async def pg_driver(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction (begun if needed, so
    that what runs on the driver is part of it)."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "the session's connection is open"
    if not driver.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")  # SQLAlchemy begins its transaction lazily
    return driver


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A savepoint in the session's transaction, rolled back when the block raises (and the
    error let through): the driver's on PostgreSQL (what runs on the driver is inside it),
    the session's on SQLite."""
    if is_postgres(session):
        driver = await pg_driver(session)
        async with driver.transaction():
            yield
    else:
        async with session.begin_nested():
            yield


async def copy_rows(
    driver: Any,
    table: Table,
    names: Sequence[str],
    records: Iterable[tuple[Any, ...]],
    *,
    into: str | None = None,
    stream: bool = False,
) -> None:
    """COPY `records` (tuples in the order of `names`) into `table` (or the table `into`, of
    the same columns' types), in the binary rows person.copy writes; those it cannot write go
    through asyncpg's copy_records_to_table. `stream`: the rows are encoded and sent a slice
    at a time (an iterator's as it makes them), so that the database stores each slice while
    the next is encoded, instead of waiting for the whole batch's encoding (a value that
    cannot be written then fails the COPY instead of going to asyncpg)."""
    columns = encoders(table, names)
    target = into or table.name
    if columns is not None and stream:
        await driver.copy_to_table(
            target,
            source=binary_stream(columns, records, _STREAM_SLICE),
            columns=list(names),
            format="binary",
        )
        return
    rows = records if isinstance(records, Sequence) else list(records)
    data = None if columns is None else binary_rows(columns, rows)
    if data is None:
        await driver.copy_records_to_table(target, records=rows, columns=list(names))
        return
    await driver.copy_to_table(
        target, source=memoryview(data), columns=list(names), format="binary"
    )


def json_list(values: Sequence[Any]) -> str:
    return orjson.dumps(values).decode()


async def insert_new_rows(
    session: AsyncSession,
    table: Table,
    names: Sequence[str],
    records: Sequence[tuple[Any, ...]],
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
                await copy_rows(driver, table, names, records, stream=True)
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


async def insert_all_rows(
    session: AsyncSession,
    table: Table,
    names: Sequence[str],
    records: Sequence[tuple[Any, ...]],
    key: str,
    *,
    own_savepoint: bool = True,
) -> set[Any] | None:
    """Insert all of `records` (tuples in the order of `names`) or none: their unique `key`s
    inserted, or None when one of them exists already (then nothing is inserted). A savepoint
    around one COPY on PostgreSQL, around one INSERT on SQLite.

    `own_savepoint=False`: on PostgreSQL the caller has a savepoint of its own around this
    and rolls it back when None is returned (the transaction is in error until then); the
    COPY starts at once instead of a round trip later."""
    if not records:
        return set()
    at = list(names).index(key)
    # A savepoint inside the session's transaction, unless the caller holds one (PostgreSQL).
    held = not own_savepoint and is_postgres(session)
    try:
        async with nullcontext() if held else savepoint(session):
            await append_rows(session, table, names, records, stream=True)
    except (asyncpg.UniqueViolationError, IntegrityError):
        return None
    return {r[at] for r in records}


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


async def existing(
    session: AsyncSession, table: Table, key: str, values: Sequence[str]
) -> set[str]:
    """The `values` of the text column `key` found in `table` (one statement)."""
    if not values:
        return set()
    if is_postgres(session):
        return await pg_existing(session, table, key, values)
    conn = await session.connection()
    column = table.c[key]
    return set((await conn.execute(select(column).where(column.in_(values)))).scalars().all())


async def delete_rows(session: AsyncSession, table: Table, key: str, values: Sequence[str]) -> None:
    """Delete the rows of `table` whose `key` is one of `values` (few: a batch's take-backs)."""
    if values:
        conn = await session.connection()
        await conn.execute(delete(table).where(table.c[key].in_(values)))


async def append_rows(
    session: AsyncSession,
    table: Table,
    names: Sequence[str],
    records: Iterable[tuple[Any, ...]],
    *,
    stream: bool = False,
) -> None:
    """Insert rows that cannot conflict (fresh keys), in order: COPY on PostgreSQL (`stream`:
    sent a slice at a time as they are made, copy_rows), one INSERT on SQLite."""
    if is_postgres(session):
        driver = await pg_driver(session)
        await copy_rows(driver, table, names, records, stream=stream)
        return
    conn = await session.connection()
    await conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in records])


async def _pg_update_many(
    session: AsyncSession,
    table: Table,
    key: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Set the columns `names` of the rows found by `key` on PostgreSQL: `rows` COPYed into a
    temporary table of the columns' types (one a connection and column set, emptied at each
    commit), then one UPDATE ... FROM it."""
    scratch = f"hr_update_{table.name}_{zlib.crc32(','.join(names).encode()):08x}"
    driver = await pg_driver(session)
    await driver.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} ON COMMIT DELETE ROWS AS "
        f"SELECT {', '.join(names)} FROM {table.name} WITH NO DATA; TRUNCATE {scratch}"
    )
    await copy_rows(driver, table, names, rows, into=scratch, stream=True)
    await driver.execute(
        f"UPDATE {table.name} AS t SET "
        f"{', '.join(f'{n} = u.{n}' for n in names if n != key)} "
        f"FROM {scratch} AS u WHERE t.{key} = u.{key}"
    )
