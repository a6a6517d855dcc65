"""Every query over a service's one-time-code tables; never commits."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.otp.models import OtpCodeMixin, SmsOutboxMixin


class OtpCodeRepository:
    def __init__(self, session: AsyncSession, model: type[OtpCodeMixin]) -> None:
        self.session = session
        self.model = model

    def add(self, code: OtpCodeMixin) -> None:
        self.session.add(code)

    async def last_sent_at(self, phone_hash: str) -> datetime | None:
        model = self.model
        return await self.session.scalar(
            select(func.max(model.created_at)).where(model.phone_hash == phone_hash)
        )

    async def count_sent_since(self, phone_hash: str, since: datetime) -> int:
        model = self.model
        count = await self.session.scalar(
            select(func.count())
            .select_from(model)
            .where(model.phone_hash == phone_hash, model.created_at >= since)
        )
        return int(count or 0)

    async def newest(self, phone_hash: str, scope: str) -> OtpCodeMixin | None:
        model = self.model
        return await self.session.scalar(
            select(model)
            .where(model.phone_hash == phone_hash, model.scope == scope)
            .order_by(model.created_at.desc())
            .limit(1)
        )


class SmsOutboxRepository:
    def __init__(self, session: AsyncSession, model: type[SmsOutboxMixin]) -> None:
        self.session = session
        self.model = model

    def add(self, message: SmsOutboxMixin) -> None:
        self.session.add(message)

    async def newest(self, phone: str | None, limit: int = 100) -> Sequence[SmsOutboxMixin]:
        model = self.model
        query = select(model).order_by(model.sent_at.desc(), model.id.desc()).limit(limit)
        if phone:
            query = query.where(model.phone == phone)
        return (await self.session.scalars(query)).all()
