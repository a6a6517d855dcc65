"""Every query on persons; never commits."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from health_records.dialect import (
    Columns,
    insert_ignore,
    insert_new_rows,
    is_postgres,
    json_list,
    pg_driver,
    update_many,
)
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

    async def by_keys(self, person_keys: list[str], *, for_update: bool = False) -> list[Person]:
        """Persons by key, in key order (so two batches lock shared persons in the same order)."""
        query = select(Person).where(Person.person_key.in_(person_keys)).order_by(Person.person_key)
        if for_update:
            query = query.with_for_update()
        return list((await self.session.scalars(query)).all())

    async def insert_missing(self, rows: list[dict[str, Any]]) -> None:
        """Insert persons in one statement; those that exist already are left as they are."""
        if rows:
            conn = await self.session.connection()
            await conn.execute(insert_ignore(self.session, Person.__table__), rows)

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

    async def update_columns(self, columns: Columns) -> None:
        """Set columns of many persons in one statement (`person_key` names each row)."""
        await update_many(self.session, Person.__table__, "person_key", columns)

    async def code_history(self, person_key: str, limit: int) -> list[CodeChange]:
        return list(
            (
                await self.session.scalars(
                    select(CodeChange)
                    .where(CodeChange.person_key == person_key)
                    .order_by(CodeChange.changed_at.desc(), CodeChange.id.desc())
                    .limit(limit)
                )
            ).all()
        )
