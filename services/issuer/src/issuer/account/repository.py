"""Every query on users; never commits."""

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from issuer.account.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_phone_hash(self, phone_hash: str) -> User | None:
        return await self.session.scalar(select(User).where(User.phone_hash == phone_hash))

    async def add_if_absent(self, user: User) -> User:
        """The number's user: `user` written, or the one a concurrent first sign-in (or
        venue-admin resolving the number) has just written, never a conflict error."""
        insert = (
            sqlite.insert(User)
            if self.session.get_bind().dialect.name == "sqlite"
            else postgresql.insert(User)
        )
        await self.session.execute(
            insert.values(
                id=user.id,
                phone_hash=user.phone_hash,
                masked_phone=user.masked_phone,
                created_at=user.created_at,
            ).on_conflict_do_nothing(index_elements=[User.phone_hash])
        )
        found = await self.by_phone_hash(user.phone_hash)
        assert found is not None  # written above, or by the transaction it conflicted with
        return found
