"""Every query on persons; never commits."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
