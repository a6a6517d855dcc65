"""Every table of the issuer, imported so that `Base.metadata` (Alembic's target) knows them."""

from issuer.account.models import User
from issuer.appeal.models import Appeal
from issuer.credential.models import Credential
from issuer.db import Base, OtpCode, OutboxEvent, SigningKey, SmsMessage
from issuer.facecheck.models import FaceCheckUse

__all__ = [
    "Appeal",
    "Base",
    "Credential",
    "FaceCheckUse",
    "OtpCode",
    "OutboxEvent",
    "SigningKey",
    "SmsMessage",
    "User",
]
