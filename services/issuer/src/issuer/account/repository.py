"""Every query on users; never commits."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from issuer.account.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_phone_hash(self, phone_hash: str) -> User | None:
        return await self.session.scalar(select(User).where(User.phone_hash == phone_hash))

    async def add(self, user: User) -> None:
        """Flushed at once: a concurrent first sign-in of the same number conflicts here
        (unique phone hash), not at the commit."""
        self.session.add(user)
        await self.session.flush()
