"""One-time SMS codes: sending with limits, checking with a try budget, and the senders.

Each service that sends codes has its own tables (so its limits and dev outbox are its
own); this module holds the rules. Codes are stored as HMACs, never in clear, except in the
dev outbox, which exists only with APP_ENV=dev.
"""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import httpx
from sqlalchemy import Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.clock import CST, utcnow
from hc_common.db import UTCDateTime
from hc_common.errors import DomainError, TooManyRequests
from hc_common.ids import new_id

if TYPE_CHECKING:
    from fastapi import APIRouter

log = logging.getLogger("hc.sms")

CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
PER_MINUTE = 1
PER_DAY = 10


class OtpCodeMixin:
    """Columns of a service's `otp_codes` table."""

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed: Mapped[bool] = mapped_column(default=False)


class SmsOutboxMixin:
    """Columns of the dev outbox: what would have been sent, readable at `/dev/sms-outbox`."""

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str] = mapped_column(String(8))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SmsSender(Protocol):
    async def send(self, session: AsyncSession, phone: str, code: str) -> None: ...


class DevOutboxSender:
    """Writes the message to the service's dev outbox table in the caller's transaction."""

    def __init__(self, model: type[SmsOutboxMixin]) -> None:
        self.model = model

    async def send(self, session: AsyncSession, phone: str, code: str) -> None:
        session.add(self.model(id=new_id(), phone=phone, code=code, sent_at=utcnow()))  # type: ignore[call-arg]


class HttpSmsSender:
    """A production SMS gateway: POSTs `{phone, template, params: {code}}` with an API key."""

    def __init__(self, client: httpx.AsyncClient, endpoint: str, api_key: str, template: str):
        self.client = client
        self.endpoint = endpoint
        self.api_key = api_key
        self.template = template

    async def send(self, session: AsyncSession, phone: str, code: str) -> None:
        response = await self.client.post(
            self.endpoint,
            json={"phone": phone, "template": self.template, "params": {"code": code}},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        response.raise_for_status()


@dataclass(frozen=True, slots=True)
class OtpPolicy:
    ttl: timedelta = CODE_TTL
    max_attempts: int = MAX_ATTEMPTS
    per_minute: int = PER_MINUTE
    per_day: int = PER_DAY


class OtpCodes:
    """The rules of one-time codes, over one service's `otp_codes` table."""

    def __init__(
        self,
        model: type[OtpCodeMixin],
        sender: SmsSender,
        pepper: bytes,
        policy: OtpPolicy | None = None,
        invalid_code_status: int = 401,
    ) -> None:
        self.model = model
        self.sender = sender
        self.pepper = pepper
        self.policy = policy or OtpPolicy()
        self.invalid_code_status = invalid_code_status

    def _hash(self, *parts: str) -> str:
        return hmac.new(self.pepper, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()

    def phone_hash(self, phone: str) -> str:
        return self._hash("phone", phone)

    async def send(self, session: AsyncSession, phone: str, scope: str) -> int:
        """Create and send a code; returns its lifetime in seconds. Raises 429 past a limit."""
        now = utcnow()
        phone_hash = self.phone_hash(phone)
        model = self.model
        last = await session.scalar(
            select(func.max(model.created_at)).where(model.phone_hash == phone_hash)
        )
        if last is not None and now - last < timedelta(minutes=1):
            wait = 60 - int((now - last).total_seconds())
            raise TooManyRequests(
                detail="验证码发送过于频繁，请稍后再试",
                detail_en="Codes are sent at most once a minute",
                headers={"Retry-After": str(max(wait, 1))},
            )
        day_start_cst = now.astimezone(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        today = await session.scalar(
            select(func.count())
            .select_from(model)
            .where(model.phone_hash == phone_hash, model.created_at >= day_start_cst)
        )
        if (today or 0) >= self.policy.per_day:
            wait = int((day_start_cst + timedelta(days=1) - now).total_seconds())
            raise TooManyRequests(
                detail="今日验证码发送次数已达上限",
                detail_en="At most 10 codes a day per number",
                headers={"Retry-After": str(max(wait, 1))},
            )
        code = f"{secrets.randbelow(10**6):06d}"
        session.add(
            model(
                id=new_id(),
                phone_hash=phone_hash,
                scope=scope,  # type: ignore[call-arg]
                code_hash=self._hash(scope, phone, code),
                created_at=now,
                expires_at=now + self.policy.ttl,
                attempts=0,
                consumed=False,
            )
        )
        await self.sender.send(session, phone, code)
        return int(self.policy.ttl.total_seconds())

    async def check(self, session: AsyncSession, phone: str, scope: str, code: str) -> None:
        """Consume the newest live code of this phone and scope, or raise `invalid_code`.

        A wrong try is committed before raising, so that the try budget holds."""
        now = utcnow()
        model = self.model
        row = await session.scalar(
            select(model)
            .where(model.phone_hash == self.phone_hash(phone), model.scope == scope)
            .order_by(model.created_at.desc())
            .limit(1)
        )
        invalid = DomainError(
            "invalid_code",
            status=self.invalid_code_status,
            detail="验证码错误或已失效",
            detail_en="Wrong or expired code",
        )
        if (
            row is None
            or row.consumed
            or row.expires_at <= now
            or row.attempts >= self.policy.max_attempts
        ):
            raise invalid
        if not hmac.compare_digest(row.code_hash, self._hash(scope, phone, code.strip())):
            row.attempts += 1
            await session.commit()
            raise invalid
        row.consumed = True
        await session.flush()


def dev_outbox_router(model: type[SmsOutboxMixin]) -> "APIRouter":
    """`GET /dev/sms-outbox?phone=`: included only when the service runs with APP_ENV=dev."""
    from fastapi import APIRouter, Query
    from pydantic import BaseModel

    from hc_common.clock import rfc3339
    from hc_common.deps import SessionDep

    class Message(BaseModel):
        phone: str
        code: str
        sent_at: str

    class Outbox(BaseModel):
        messages: list[Message]

    router = APIRouter(tags=["dev"])

    @router.get(
        "/dev/sms-outbox",
        response_model=Outbox,
        summary="Dev only: the SMS messages this service would have sent, newest first",
    )
    async def sms_outbox(session: SessionDep, phone: str | None = Query(None)) -> Outbox:
        query = select(model).order_by(model.sent_at.desc(), model.id.desc()).limit(100)
        if phone:
            query = query.where(model.phone == phone.strip())
        rows = (await session.scalars(query)).all()
        return Outbox(
            messages=[Message(phone=r.phone, code=r.code, sent_at=rfc3339(r.sent_at)) for r in rows]
        )

    return router
