"""Every query on persons; never commits."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from health_records.dialect import insert_ignore
from health_records.person.models import CodeChange, Person


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
        return list((await self.session.scalars(
            select(Person).where(Person.subject_id.in_(subject_ids)))).all())

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

    async def code_history(self, person_key: str, limit: int) -> list[CodeChange]:
        return list((await self.session.scalars(
            select(CodeChange).where(CodeChange.person_key == person_key)
            .order_by(CodeChange.changed_at.desc(), CodeChange.id.desc()).limit(limit))).all())
