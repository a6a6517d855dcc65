"""Every query on venues, members and rules; never commits.

The writes that two requests can race (adding, changing and removing a member, replacing
the rule) are single conditional statements, so that the database, not a read before the
write, decides who wins: the same on SQLite and PostgreSQL, with any number of replicas."""

from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from venue_admin.venue.models import Member, Venue, VenueRule


class VenueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def venue(self, venue_id: str) -> Venue | None:
        return await self.session.get(Venue, venue_id)

    async def venue_ids(self, limit: int, after: str | None) -> list[str]:
        """Ids of every venue, in id order, after `after`."""
        query = select(Venue.id)
        if after:
            query = query.where(Venue.id > after)
        return list((await self.session.scalars(query.order_by(Venue.id).limit(limit))).all())

    async def member(self, venue_id: str, user_id: str) -> Member | None:
        return await self.session.get(Member, (venue_id, user_id))

    async def members(self, venue_id: str, limit: int, after: str | None) -> list[Member]:
        query = select(Member).where(Member.venue_id == venue_id)
        if after:
            query = query.where(Member.user_id > after)
        return list((await self.session.scalars(query.order_by(Member.user_id).limit(limit))).all())

    async def members_of_venues(self, venue_ids: list[str]) -> list[Member]:
        if not venue_ids:
            return []
        query = (
            select(Member)
            .where(Member.venue_id.in_(venue_ids))
            .order_by(Member.venue_id, Member.user_id)
        )
        return list((await self.session.scalars(query)).all())

    async def venues_of(
        self, user_id: str, limit: int, after: str | None
    ) -> list[tuple[Venue, str]]:
        """The user's venues, newest first, with the user's role at each."""
        query = (
            select(Venue, Member.role)
            .join(Member, Member.venue_id == Venue.id)
            .where(Member.user_id == user_id)
        )
        if after:
            query = query.where(Venue.id < after)
        rows = await self.session.execute(query.order_by(Venue.id.desc()).limit(limit))
        return [(venue, role) for venue, role in rows.all()]

    async def rule(self, venue_id: str) -> VenueRule | None:
        return await self.session.get(VenueRule, venue_id)

    async def rules_of_venues(self, venue_ids: list[str]) -> dict[str, VenueRule]:
        if not venue_ids:
            return {}
        query = select(VenueRule).where(VenueRule.venue_id.in_(venue_ids))
        return {rule.venue_id: rule for rule in (await self.session.scalars(query)).all()}

    def add(self, row: Venue | Member) -> None:
        self.session.add(row)

    async def _insert(self) -> Any:
        """The dialect's INSERT (both have ON CONFLICT, which the generic one has not)."""
        connection = await self.session.connection()
        return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert

    async def add_member_if_absent(self, member: Member) -> Member | None:
        """Insert the member unless the (venue, user) is one already; the new row, or None
        when it was there (a concurrent add included: the key decides, no IntegrityError)."""
        insert = await self._insert()
        values = {
            "venue_id": member.venue_id,
            "user_id": member.user_id,
            "masked_phone": member.masked_phone,
            "role": member.role,
            "permissions": member.permissions,
            "added_at": member.added_at,
            "version": member.version,
        }
        statement = (
            insert(Member)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["venue_id", "user_id"])
            .returning(Member)
        )
        return (
            await self.session.scalars(statement, execution_options={"populate_existing": True})
        ).one_or_none()

    async def set_member_permissions(
        self, venue_id: str, user_id: str, role: str, permissions: list[str], at_least: int
    ) -> Member | None:
        """Replace the permissions of the member, if it is still there with that role; its
        version becomes one more than the stored one and at least `at_least`, computed by the
        database from the row it updates (so that the last change has the highest version)."""
        next_version = Member.version + 1
        statement = (
            update(Member)
            .where(Member.venue_id == venue_id, Member.user_id == user_id, Member.role == role)
            .values(
                permissions=permissions,
                version=case((next_version > at_least, next_version), else_=at_least),
            )
            .returning(Member)
        )
        return (
            await self.session.scalars(statement, execution_options={"populate_existing": True})
        ).one_or_none()

    async def remove_member(self, venue_id: str, user_id: str, role: str) -> int | None:
        """Delete the member if it is still there with that role; the version it had, or
        None when another request removed it first."""
        statement = (
            delete(Member)
            .where(Member.venue_id == venue_id, Member.user_id == user_id, Member.role == role)
            .returning(Member.version)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def replace_rule(
        self,
        venue_id: str,
        allowed_colors: list[str],
        max_nat_age_hours: int | None,
        min_vaccine_doses: int,
        updated_at: datetime,
    ) -> VenueRule:
        """Insert the venue's rule (version 1) or replace it (its version + 1), in one
        statement: two replacements at once get two versions, the later write the higher."""
        insert = await self._insert()
        statement = insert(VenueRule).values(
            venue_id=venue_id,
            allowed_colors=allowed_colors,
            max_nat_age_hours=max_nat_age_hours,
            min_vaccine_doses=min_vaccine_doses,
            version=1,
            updated_at=updated_at,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["venue_id"],
            set_={
                "allowed_colors": statement.excluded.allowed_colors,
                "max_nat_age_hours": statement.excluded.max_nat_age_hours,
                "min_vaccine_doses": statement.excluded.min_vaccine_doses,
                "updated_at": statement.excluded.updated_at,
                "version": VenueRule.version + 1,
            },
        ).returning(VenueRule)
        return (
            await self.session.scalars(statement, execution_options={"populate_existing": True})
        ).one()

    async def masked_phones_of_members(self, venue_id: str, user_ids: list[str]) -> dict[str, str]:
        """The masked phones of those users who are members of the venue now."""
        if not user_ids:
            return {}
        query = select(Member.user_id, Member.masked_phone).where(
            Member.venue_id == venue_id, Member.user_id.in_(user_ids)
        )
        return {user_id: phone for user_id, phone in (await self.session.execute(query)).all()}
