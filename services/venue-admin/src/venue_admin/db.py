"""venue-admin's declarative base and its infrastructure tables."""

from sqlalchemy.orm import DeclarativeBase

from hc_common.auth.keys import SigningKeyMixin
from hc_common.events.outbox import OutboxMixin
from hc_common.otp import OtpCodeMixin, OtpLimitMixin, SmsOutboxMixin


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


class SmsMessage(Base, SmsOutboxMixin):
    __tablename__ = "sms_outbox"
