"""Columns of a service's `otp_codes` and dev `sms_outbox` tables."""

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime


class OtpCodeMixin:
    """A code sent: stored as an HMAC, never in clear."""

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
