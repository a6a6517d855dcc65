"""venue-admin settings (`VENUE_ADMIN_` prefix, plus the unprefixed shared ones)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from hc_common.otp import OtpSettings
from hc_common.settings import ServiceSettings

DEV_KEY_ENCRYPTION_KEY = "ZGV2LXZlbnVlLWFkbWluLWtleS1lbmNyeXB0aW9uLWs"
DEV_PEPPER = "ZGV2LXZlbnVlLWFkbWluLXBlcHBlci0zMi1ieXRlcyE"


class Settings(ServiceSettings, OtpSettings):
    model_config = SettingsConfigDict(env_prefix="VENUE_ADMIN_", extra="ignore")

    service_name: str = "venue-admin"
    key_encryption_key: str = DEV_KEY_ENCRYPTION_KEY
    pepper: str = DEV_PEPPER
    device_token_ttl_seconds: int = 86400
    access_record_retention_days: int = 28
    access_record_purge_interval_seconds: float = 3600
    # The durable consumers of ACCESS: batches of records (what verifiers send), and single
    # records (what verifiers of earlier versions sent; kept while any may still run or
    # while their messages wait in the stream). A work queue takes one consumer a subject.
    access_batch_consumer_durable: str = "venue-admin-access-batches"
    access_consumer_durable: str = "venue-admin-access-records"
    # A record that fails is tried again after 2 s, 4 s, 8 s, ... (at most 2 min) and is
    # dead-lettered when it fails on its 8th delivery: about four minutes, so that a short
    # database outage delays records rather than sending them all to the dead letters.
    access_consumer_max_deliver: int = Field(8, ge=1)  # both consumers
    access_consumer_retry_delay_seconds: float = Field(2.0, gt=0)
    sms_template: str = "HC_SUBADMIN"

    def dev_secrets_in_use(self) -> list[str]:
        found = super().dev_secrets_in_use()
        if self.key_encryption_key == DEV_KEY_ENCRYPTION_KEY:
            found.append("VENUE_ADMIN_KEY_ENCRYPTION_KEY")
        if self.pepper == DEV_PEPPER:
            found.append("VENUE_ADMIN_PEPPER")
        if self.sms_outbox:
            found.append(
                "VENUE_ADMIN_SMS_OUTBOX (set false and configure VENUE_ADMIN_SMS_ENDPOINT)"
            )
        return found
