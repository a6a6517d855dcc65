"""Every query on venues, members and rules; never commits."""

from sqlalchemy import select
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

    def add(self, row: Venue | Member | VenueRule) -> None:
        self.session.add(row)

    async def delete(self, row: Member) -> None:
        await self.session.delete(row)
