"""Every query on appeals; never commits."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from issuer.appeal.models import Appeal


class AppealRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, appeal: Appeal) -> None:
        self.session.add(appeal)

    async def list_for_user(self, user_id: str, limit: int, before: str | None) -> Sequence[Appeal]:
        """Newest first (ids are time-ordered); `before` is the last id of the previous page."""
        query = select(Appeal).where(Appeal.user_id == user_id)
        if before:
            query = query.where(Appeal.id < before)
        return (await self.session.scalars(query.order_by(Appeal.id.desc()).limit(limit))).all()
