"""The rules of one-time codes: at most one a minute and ten a day per number, five tries,
five minutes of life, consumed once. Codes are stored as HMACs, never in clear."""

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import CST, utcnow
from hc_common.errors import DomainError, TooManyRequests
from hc_common.ids import new_id
from hc_common.otp.models import OtpCodeMixin
from hc_common.otp.repository import OtpCodeRepository, OtpLimitRepository
from hc_common.otp.senders import SmsSender


@dataclass(frozen=True, slots=True)
class OtpPolicy:
    ttl: timedelta = timedelta(minutes=5)
    max_attempts: int = 5
    min_interval: timedelta = timedelta(minutes=1)
    per_day: int = 10


class OtpSettings(BaseSettings):
    """Settings of a service that sends codes, with that service's env prefix (e.g.
    `VENUE_ADMIN_OTP_MIN_INTERVAL_SECONDS`): the limits, whose defaults are the contract's,
    and the SMS gateway (the dev outbox is used with APP_ENV=dev while `sms_outbox` is on)."""

    sms_endpoint: str = ""
    sms_api_key: str = ""
    sms_template: str = "HC_CODE"
    sms_outbox: bool = True
    otp_ttl_seconds: int = Field(300, ge=30)
    otp_max_attempts: int = Field(5, ge=1)
    otp_min_interval_seconds: int = Field(60, ge=1)
    otp_per_day: int = Field(10, ge=1)

    @property
    def otp_policy(self) -> OtpPolicy:
        return OtpPolicy(
            ttl=timedelta(seconds=self.otp_ttl_seconds),
            max_attempts=self.otp_max_attempts,
            min_interval=timedelta(seconds=self.otp_min_interval_seconds),
            per_day=self.otp_per_day,
        )


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
        """Create and send a code; returns its lifetime in seconds. Raises 429 past a limit.

        The code is counted against the number's limits first, by one conditional upsert of
        its limits row: of any number of requests at once, one gets the code. A failed
        delivery raises, and the request's rollback takes the count back with it."""
        now = utcnow()
        phone_hash = self.phone_hash(phone)
        limits = OtpLimitRepository(session, self.model.limits)
        policy = self.policy
        if not await limits.take(
            phone_hash, now, now.astimezone(CST).date(), policy.min_interval, policy.per_day
        ):
            raise await self._too_many(limits, phone_hash, now)
        code = f"{secrets.randbelow(10**6):06d}"
        OtpCodeRepository(session, self.model).add(
            self.model(  # type: ignore[call-arg]
                id=new_id(),
                phone_hash=phone_hash,
                scope=scope,
                code_hash=self._hash(scope, phone, code),
                created_at=now,
                expires_at=now + policy.ttl,
                attempts=0,
                consumed=False,
            )
        )
        await self.sender.send(session, phone, code)
        return int(policy.ttl.total_seconds())

    async def _too_many(
        self, limits: OtpLimitRepository, phone_hash: str, now: datetime
    ) -> TooManyRequests:
        """The 429 of a refused code, with `Retry-After` rounded up: a client that waits
        exactly that long is then let through."""
        state = await limits.state(phone_hash)
        last_sent_at = state.last_sent_at if state is not None else now
        if state is None or now - last_sent_at < self.policy.min_interval:
            wait = (self.policy.min_interval - (now - last_sent_at)).total_seconds()
            return TooManyRequests(
                detail="验证码发送过于频繁，请稍后再试",
                detail_en="Codes are sent at most once a minute",
                headers={"Retry-After": str(max(math.ceil(wait), 1))},
            )
        day_start_cst = now.astimezone(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        wait = (day_start_cst + timedelta(days=1) - now).total_seconds()
        return TooManyRequests(
            detail="今日验证码发送次数已达上限",
            detail_en="At most 10 codes a day per number",
            headers={"Retry-After": str(max(math.ceil(wait), 1))},
        )

    async def check(self, session: AsyncSession, phone: str, scope: str, code: str) -> None:
        """Consume the newest live code of this phone and scope, or raise `invalid_code`.

        Each try is judged by one conditional update: a wrong one counts only while the code
        is alive (and is committed at once, so that it outlives the rolled-back request), the
        right one consumes it only while it is alive and unused. So at most `max_attempts`
        tries are ever judged, and a code signs in once, however many arrive together."""
        now = utcnow()
        codes = OtpCodeRepository(session, self.model)
        row = await codes.newest(self.phone_hash(phone), scope)
        invalid = DomainError(
            "invalid_code",
            status=self.invalid_code_status,
            detail="验证码错误或已失效",
            detail_en="Wrong or expired code",
        )
        max_attempts = self.policy.max_attempts
        if row is None or row.consumed or row.expires_at <= now or row.attempts >= max_attempts:
            raise invalid
        if not hmac.compare_digest(row.code_hash, self._hash(scope, phone, code.strip())):
            if await codes.count_wrong_try(row.id, now, max_attempts):
                await session.commit()
            raise invalid
        if not await codes.consume(row.id, now, max_attempts):
            raise invalid
