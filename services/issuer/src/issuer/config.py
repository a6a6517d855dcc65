"""Issuer settings (`ISSUER_` prefix, plus the unprefixed shared ones)."""

from pydantic_settings import SettingsConfigDict

from hc_common.otp import OtpSettings
from hc_common.settings import ServiceSettings

DEV_KEY_ENCRYPTION_KEY = "ZGV2LWlzc3Vlci1rZXktZW5jcnlwdGlvbi1rZXktMzI"
DEV_FACE_CHECK_SECRET = "dev-face-check-secret-not-for-production"
DEV_PEPPER = "ZGV2LWlzc3Vlci1wZXBwZXItZm9yLWxvb2stdXAta2U"
DEV_AUTHORITY_KEY = "dev-authority-key"


class Settings(ServiceSettings, OtpSettings):
    model_config = SettingsConfigDict(env_prefix="ISSUER_", extra="ignore")

    service_name: str = "issuer"
    # Seals the private signing keys in the database (32 bytes, base64url).
    key_encryption_key: str = DEV_KEY_ENCRYPTION_KEY
    # Keys the HMACs that stand for ID numbers and phone numbers (32 bytes, base64url).
    pepper: str = DEV_PEPPER
    access_token_ttl_seconds: int = 7200
    face_check_ttl_seconds: int = 600
    # Key of the face-verification provider's signed results (HS256 shared secret).
    face_check_secret: str = DEV_FACE_CHECK_SECRET
    sms_template: str = "HC_SIGNIN"
    # The health authority's staff key: appeal review (`Authorization: Bearer <key>`).
    authority_api_key: str = DEV_AUTHORITY_KEY
    # The issuing authority printed on every card.
    card_issuing_authority: str = "广西壮族自治区卫生健康委员会"
    # Worker processes that draw cards and QR codes off the event loop (0: a thread instead).
    card_render_processes: int = 2

    def dev_secrets_in_use(self) -> list[str]:
        found = super().dev_secrets_in_use()
        if self.key_encryption_key == DEV_KEY_ENCRYPTION_KEY:
            found.append("ISSUER_KEY_ENCRYPTION_KEY")
        if self.pepper == DEV_PEPPER:
            found.append("ISSUER_PEPPER")
        if self.face_check_secret == DEV_FACE_CHECK_SECRET:
            found.append("ISSUER_FACE_CHECK_SECRET")
        if self.authority_api_key == DEV_AUTHORITY_KEY:
            found.append("ISSUER_AUTHORITY_API_KEY")
        if self.sms_outbox:
            found.append("ISSUER_SMS_OUTBOX (set false and configure ISSUER_SMS_ENDPOINT)")
        return found
