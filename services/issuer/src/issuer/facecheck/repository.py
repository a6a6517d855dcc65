"""Every query on spent face checks; never commits."""

from sqlalchemy.ext.asyncio import AsyncSession

from issuer.facecheck.models import FaceCheckUse


class FaceCheckUseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def is_spent(self, token_id: str) -> bool:
        return await self.session.get(FaceCheckUse, token_id) is not None

    async def add(self, use: FaceCheckUse) -> None:
        """Flushed at once: a token that a concurrent application is spending conflicts here
        (primary key), before health-records is asked, not at the commit."""
        self.session.add(use)
        await self.session.flush()
