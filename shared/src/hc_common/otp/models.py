"""Columns of a service's `otp_codes`, `otp_limits` and dev `sms_outbox` tables.

A service declares its limits table and names it on its codes table, e.g.

    class OtpLimit(Base, OtpLimitMixin):
        __tablename__ = "otp_limits"

    class OtpCode(Base, OtpCodeMixin):
        __tablename__ = "otp_codes"
        limits = OtpLimit
"""

from datetime import date, datetime
from typing import ClassVar

from sqlalchemy import Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime


class OtpLimitMixin:
    """A number's sending limits as one row per number, which one conditional upsert reads
    and advances, so that "one a minute, ten a day" holds across concurrent requests and
    replicas (the row is the lock)."""

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The China-time calendar day `sent_on_day` counts.
    day: Mapped[date] = mapped_column(Date)
    sent_on_day: Mapped[int] = mapped_column(Integer)


class OtpCodeMixin:
    """A code sent: stored as an HMAC, never in clear."""

    # The service's limits table (see the module's docstring).
    limits: ClassVar[type[OtpLimitMixin]]

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed: Mapped[bool] = mapped_column(default=False)


class SmsOutboxMixin:
    """The dev outbox: what would have been sent, readable at `/dev/sms-outbox` (APP_ENV=dev)."""

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str] = mapped_column(String(8))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SmsNoticeOutboxMixin(SmsOutboxMixin):
    """A dev outbox that also holds notices (e.g. an appeal's outcome): a message with a
    `text` and no code. A code message has `code` and no `text`."""

    code: Mapped[str | None] = mapped_column(String(8), nullable=True)  # type: ignore[assignment]
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
