"""Every query over a service's one-time-code tables; never commits.

The limits and the tries are kept by conditional statements that the database applies
atomically (`INSERT ... ON CONFLICT DO UPDATE ... WHERE`, `UPDATE ... WHERE attempts < n`),
never by reading a value and writing it back: so they hold across concurrent requests and
any number of replicas, on SQLite and on PostgreSQL."""

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Row, and_, case, false, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.otp.models import OtpCodeMixin, OtpLimitMixin, SmsOutboxMixin


class OtpLimitRepository:
    def __init__(self, session: AsyncSession, model: type[OtpLimitMixin]) -> None:
        self.session = session
        self.model = model

    async def take(
        self, phone_hash: str, now: datetime, day: date, min_interval: timedelta, per_day: int
    ) -> bool:
        """Counts one code against the number's limits if they allow it, in one statement:
        True when counted. On PostgreSQL the upsert waits for a concurrent one on the same
        number and then judges the row as that one left it; on SQLite writers take turns."""
        model = self.model
        values = {"phone_hash": phone_hash, "last_sent_at": now, "day": day, "sent_on_day": 1}
        insert = (
            sqlite.insert(model)
            if self.session.get_bind().dialect.name == "sqlite"
            else postgresql.insert(model)
        ).values(values)
        upsert = insert.on_conflict_do_update(
            index_elements=[model.phone_hash],
            set_={
                "last_sent_at": insert.excluded.last_sent_at,
                "day": insert.excluded.day,
                "sent_on_day": case(
                    (model.day == insert.excluded.day, model.sent_on_day + 1), else_=1
                ),
            },
            where=and_(
                model.last_sent_at <= now - min_interval,
                or_(model.day != insert.excluded.day, model.sent_on_day < per_day),
            ),
        )
        counted = await self.session.scalar(upsert.returning(model.sent_on_day))
        return counted is not None

    async def state(self, phone_hash: str) -> Row[datetime, date, int] | None:
        """The number's last code and day count, as committed (for `Retry-After`)."""
        model = self.model
        result = await self.session.execute(
            select(model.last_sent_at, model.day, model.sent_on_day).where(
                model.phone_hash == phone_hash
            )
        )
        return result.first()


class OtpCodeRepository:
    def __init__(self, session: AsyncSession, model: type[OtpCodeMixin]) -> None:
        self.session = session
        self.model = model

    def add(self, code: OtpCodeMixin) -> None:
        self.session.add(code)

    async def newest(self, phone_hash: str, scope: str) -> OtpCodeMixin | None:
        model = self.model
        return await self.session.scalar(
            select(model)
            .where(model.phone_hash == phone_hash, model.scope == scope)
            .order_by(model.created_at.desc())
            .limit(1)
        )

    def _live(self, code_id: str, now: datetime, max_attempts: int) -> list[ColumnElement[bool]]:
        model = self.model
        return [
            model.id == code_id,
            model.consumed.is_(false()),
            model.attempts < max_attempts,
            model.expires_at > now,
        ]

    async def count_wrong_try(self, code_id: str, now: datetime, max_attempts: int) -> bool:
        """One more wrong try on the code if it is still alive: True when counted. The
        condition and the increment are one statement, so no try is lost to a race and none
        is counted past `max_attempts`."""
        model = self.model
        counted = await self.session.scalar(
            update(model)
            .where(*self._live(code_id, now, max_attempts))
            .values(attempts=model.attempts + 1)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        return counted is not None

    async def consume(self, code_id: str, now: datetime, max_attempts: int) -> bool:
        """Marks the code used if it is still alive: True for exactly one caller however many
        present the right code at once."""
        model = self.model
        consumed = await self.session.scalar(
            update(model)
            .where(*self._live(code_id, now, max_attempts))
            .values(consumed=true())
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        return consumed is not None


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
