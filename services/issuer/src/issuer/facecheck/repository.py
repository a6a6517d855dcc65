"""Every query on spent face checks; never commits."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from issuer.facecheck.models import FaceCheckUse


class FaceCheckUseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def is_spent(self, token_id: str) -> bool:
        return await self.session.get(FaceCheckUse, token_id) is not None

    async def add(self, use: FaceCheckUse) -> bool:
        """Flushed at once: False when the token is spent already, by a concurrent
        application too (its primary key conflicts here, before health-records is asked, not
        at the commit; PostgreSQL first waits for that application's transaction). After
        False the transaction can only be rolled back."""
        self.session.add(use)
        try:
            await self.session.flush()
        except IntegrityError:
            return False
        return True
