"""The issuer's tables that are infrastructure (keys, outbox, codes); domain tables live in
their packages. Alembic sees them all through `Base.metadata` (imported in `models_all`)."""

from sqlalchemy.orm import DeclarativeBase

from hc_common.auth.keys import SigningKeyMixin
from hc_common.events.outbox import OutboxMixin
from hc_common.otp import OtpCodeMixin, OtpLimitMixin, SmsNoticeOutboxMixin


class Base(DeclarativeBase):
    pass


class SigningKey(Base, SigningKeyMixin):
    __tablename__ = "signing_keys"


class OutboxEvent(Base, OutboxMixin):
    __tablename__ = "outbox"


class OtpLimit(Base, OtpLimitMixin):
    __tablename__ = "otp_limits"


class OtpCode(Base, OtpCodeMixin):
    __tablename__ = "otp_codes"
    limits = OtpLimit


class SmsMessage(Base, SmsNoticeOutboxMixin):
    __tablename__ = "sms_outbox"
