"""One-time SMS codes, as every service that sends them uses them (the contract gives each such
service its own limits and its own dev outbox, on tables of its own): the tables' columns,
their queries, the rules, the senders, and the dev outbox's route."""

from hc_common.otp.models import (
    OtpCodeMixin,
    OtpLimitMixin,
    SmsNoticeOutboxMixin,
    SmsOutboxMixin,
)
from hc_common.otp.router import dev_outbox_router
from hc_common.otp.senders import (
    DevOutboxSender,
    HttpSmsSender,
    SmsNoticeSender,
    SmsSender,
    make_sender,
)
from hc_common.otp.service import OtpCodes, OtpPolicy, OtpSettings

__all__ = [
    "DevOutboxSender",
    "HttpSmsSender",
    "OtpCodeMixin",
    "OtpCodes",
    "OtpLimitMixin",
    "OtpPolicy",
    "OtpSettings",
    "SmsNoticeOutboxMixin",
    "SmsNoticeSender",
    "SmsOutboxMixin",
    "SmsSender",
    "dev_outbox_router",
    "make_sender",
]
