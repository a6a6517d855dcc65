"""Every query on tracing requests, and the look-up of a trace's contacts among the persons;
never commits."""

from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import literal, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hc_common.aio import gather_settled
from hc_common.db import UTCDateTime, is_postgres
from health_records.person.models import Person
from health_records.person.repository import json_list, pg_driver
from health_records.tracing.masking import COUNTER_2, COUNTER_3, SLOT
from health_records.tracing.models import TracingRequest

# Subjects looked up per statement on SQLite (well under its limit of bound parameters).
LOOKUP_CHUNK = 5000
# From this many subjects, PostgreSQL looks them up in two halves at once (two connections).
SPLIT_FROM = 20_000
# A value's counter blocks in tracing.masking's layout: nonce || COUNTER_2 || nonce || COUNTER_3.
NONCE_BLOCK = 16


@dataclass(frozen=True, slots=True)
class Found:
    """The persons found among a trace's contacts, in the contacts' order, as columns: the
    i-th is contact `indexes[i]` (its place in the list looked up), with colour `colors[i]`,
    key `person_keys[i]` (when asked for) and sealed ID number `sealed[i]`. Where every sealed
    ID number is of one length, `sealed` is empty and `counters`/`slots` hold what
    tracing.masking needs of them, made by the database (no object per person here)."""

    indexes: list[int]
    colors: list[str]
    person_keys: list[str]
    sealed: list[bytes]
    counters: bytes = b""
    slots: bytes = b""


# The persons of a JSON array of subject ids, aggregated into columns in its order (one row):
# the places found in the array, the colours (and the keys), and the ID numbers' nonces and
# ciphertexts as tracing.masking lays them out, when all are sealed 18-character numbers (46
# bytes: 12 of nonce, 18 of ciphertext, 16 of tag). The subjects are looked up in their index's
# order (neighbouring pages, not one random page a person; COLLATE "C": a byte order, sorted
# without the locale's rules, which only the locality depends on), then put back in the
# array's order once. The aggregates take the rows in the sorted subquery's order (ORDER BY
# within each aggregate would sort them once more per aggregate on PostgreSQL 15): whatever
# the order, every column is aligned (one pass feeds them all), and contacts() checks it.
_PG_LOOKUP = """
    SELECT
        coalesce(json_agg(n - 1), '[]')::text,
        coalesce(json_agg(color), '[]')::text,
        {keys},
        coalesce(bool_and(length(id_number_enc) = 46), true),
        string_agg(
            substr(id_number_enc, 1, 12) || $2::bytea || substr(id_number_enc, 1, 12) || $3::bytea,
            ''::bytea
        ),
        string_agg(substr(id_number_enc, 13, 32), ''::bytea)
    FROM (
        SELECT s.n, p.color, p.person_key, p.id_number_enc
        FROM (
            SELECT subject_id, n
            FROM json_array_elements_text($1::json) WITH ORDINALITY AS s(subject_id, n)
            ORDER BY subject_id COLLATE "C"
        ) AS s
        JOIN persons p ON p.subject_id = s.subject_id
        ORDER BY s.n
    ) AS found
"""
_PG_KEYS = "coalesce(json_agg(person_key), '[]')::text"
# The look-up's sorts (a city's trace: 200,000 subjects, ~30 MB) done in memory, not in
# temporary files (the server's default work_mem is 4 MB); for this transaction only.
_PG_WORK_MEM = "SET LOCAL work_mem = '64MB'"


class TracingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def hold_writes(self) -> None:
        """On SQLite, take the database's write lock now, for the rest of the transaction.

        SQLite has no row locks (FOR UPDATE is ignored) and the driver begins a transaction
        only at the first write, so rows read before it may be changed by a concurrent
        transaction meanwhile; from here on no other transaction writes until this one ends,
        so what is read next is what this one changes. A write that matches no row takes the
        lock. PostgreSQL locks the rows themselves (PersonService.lock): nothing to do."""
        if not is_postgres(self.session):
            await self.session.execute(text("UPDATE tracing_requests SET changed = 0 WHERE 0"))

    async def contacts(self, subject_ids: list[str], *, with_keys: bool) -> Found:
        """The persons of these subject ids that exist, in the order of `subject_ids`; their
        keys only `with_keys` (to change them)."""
        if not subject_ids:
            return Found([], [], [], [])
        if is_postgres(self.session):
            return await self._contacts_pg(subject_ids, with_keys=with_keys)
        return await self._contacts_here(subject_ids, with_keys=with_keys)

    async def _contacts_pg(self, subject_ids: list[str], *, with_keys: bool) -> Found:
        """contacts() on PostgreSQL: a long list's halves looked up at once, on the session's
        connection and on one of their own (two cores probe the index at once); each half's
        places are its own, shifted back here. Reading persons outside the session's
        transaction is safe: a person's key, subject and ID number never change, and colours
        to be changed are read again under lock (PersonService.lock)."""
        engine = self.session.bind
        if len(subject_ids) < SPLIT_FROM or not isinstance(engine, AsyncEngine):
            parts = [await _lookup(await pg_driver(self.session), subject_ids, with_keys)]
            middle = 0
        else:
            middle = len(subject_ids) // 2
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))  # begun (SET LOCAL holds in a transaction)
                other = (await conn.get_raw_connection()).driver_connection
                assert other is not None, "a new connection is open"
                parts = await gather_settled(
                    _lookup(await pg_driver(self.session), subject_ids[:middle], with_keys),
                    _lookup(other, subject_ids[middle:], with_keys),
                )
                await conn.rollback()
        indexes = parts[0].indexes + [i + middle for p in parts[1:] for i in p.indexes]
        colors = [c for p in parts for c in p.colors]
        keys = [k for p in parts for k in p.person_keys]
        if all(p.slots or not p.indexes for p in parts):
            counters = b"".join([p.counters for p in parts])
            return Found(indexes, colors, keys, [], counters, b"".join([p.slots for p in parts]))
        return Found(indexes, colors, keys, await self._sealed_ids(indexes, subject_ids))

    async def _sealed_ids(self, indexes: list[int], subject_ids: list[str]) -> list[bytes]:
        """The sealed ID numbers of the persons found, one by one (some are not of the usual
        length: not expected, but each is still shown)."""
        wanted = [subject_ids[i] for i in indexes]
        sealed = {s: e for s, e in await self._by_subject(wanted, "id_number_enc")}
        return [sealed[s] for s in wanted]

    async def _contacts_here(self, subject_ids: list[str], *, with_keys: bool) -> Found:
        """contacts() a chunk of subjects at a time (SQLite)."""
        found_rows = await self._by_subject(subject_ids, "person_key", "color", "id_number_enc")
        rows = {s: (k, c, e) for s, k, c, e in found_rows}
        indexes = [i for i, s in enumerate(subject_ids) if s in rows]
        found = [rows[subject_ids[i]] for i in indexes]
        return Found(
            indexes,
            [c for _, c, _ in found],
            [k for k, _, _ in found] if with_keys else [],
            [e for _, _, e in found],
        )

    async def names(self, subject_ids: list[str]) -> dict[str, bytes | None]:
        """The sealed names of these persons, by subject id (for the few contacts whose scan
        showed no name)."""
        return {s: n for s, n in await self._by_subject(subject_ids, "name_enc")}

    async def _by_subject(self, subject_ids: list[str], *columns: str) -> list[Any]:
        """(subject_id, *columns) of the persons of these subject ids that exist, a chunk of
        ids a statement (SQLite's bound parameters are limited)."""
        table = Person.__table__
        found: list[Any] = []  # rows
        for start in range(0, len(subject_ids), LOOKUP_CHUNK):
            query = select(table.c.subject_id, *(table.c[c] for c in columns)).where(
                table.c.subject_id.in_(subject_ids[start : start + LOOKUP_CHUNK])
            )
            found += (await self.session.execute(query)).all()
        return found

    def add(self, request: TracingRequest) -> None:
        self.session.add(request)

    async def answer(self, trace_id: str) -> bytes | None:
        """The answer a trace was given, compressed (as kept)."""
        return await self.session.scalar(
            select(TracingRequest.answer).where(TracingRequest.trace_id == trace_id)
        )

    async def page(self, after: tuple[datetime, str] | None, limit: int) -> list[TracingRequest]:
        """Newest first; `after` is the (created_at, trace_id) of the last row already seen.
        The answers themselves are not read (deferred)."""
        query = select(TracingRequest)
        if after is not None:
            at, trace_id = after
            # A row-value comparison, which the (created_at, trace_id) index serves.
            query = query.where(
                tuple_(TracingRequest.created_at, TracingRequest.trace_id)
                < tuple_(literal(at, UTCDateTime()), literal(trace_id))
            )
        query = query.order_by(TracingRequest.created_at.desc(), TracingRequest.trace_id.desc())
        return list((await self.session.scalars(query.limit(limit))).all())


async def _lookup(driver: Any, subject_ids: list[str], with_keys: bool) -> Found:
    """_PG_LOOKUP on an asyncpg connection. Found.sealed is left empty: where the ID numbers
    are not all of one length, `counters` and `slots` are empty too (the caller reads them)."""
    await driver.execute(_PG_WORK_MEM)
    sql = _PG_LOOKUP.format(keys=_PG_KEYS if with_keys else "NULL")
    indexes_json, colors_json, keys_json, uniform, counters, slots = await driver.fetchrow(
        sql, json_list(subject_ids), COUNTER_2, COUNTER_3
    )
    indexes, colors = orjson.loads(indexes_json), orjson.loads(colors_json)
    keys = orjson.loads(keys_json) if with_keys else []
    if not uniform:
        counters = slots = b""
    if any(map(int.__ge__, indexes, islice(indexes, 1, None))):
        # Not in the list's order (the aggregates took their rows otherwise): put in it.
        order = sorted(range(len(indexes)), key=indexes.__getitem__)
        indexes = [indexes[i] for i in order]
        colors = [colors[i] for i in order]
        keys = [keys[i] for i in order] if keys else keys
        if counters:
            size = 2 * NONCE_BLOCK
            counters = b"".join([counters[i * size : (i + 1) * size] for i in order])
            slots = b"".join([slots[i * SLOT : (i + 1) * SLOT] for i in order])
    return Found(indexes, colors, keys, [], counters or b"", slots or b"")
