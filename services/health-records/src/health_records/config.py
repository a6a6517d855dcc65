"""health-records settings (`HEALTH_RECORDS_` prefix, plus the unprefixed shared ones)."""

from pydantic_settings import SettingsConfigDict

from hc_common.settings import ServiceSettings

DEV_API_KEYS = {
    "lab": "dev-lab-key",
    "vaccination_site": "dev-vaccination-site-key",
    "authority": "dev-authority-key",
}
DEV_DATA_KEY = "ZGV2LWhlYWx0aC1yZWNvcmRzLWRhdGEta2V5LTMyYnk"
DEV_PEPPER = "ZGV2LWhlYWx0aC1yZWNvcmRzLXBlcHBlci0zMmJ5dGU"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTH_RECORDS_", extra="ignore")

    service_name: str = "health-records"
    lab_api_key: str = DEV_API_KEYS["lab"]
    vaccination_site_api_key: str = DEV_API_KEYS["vaccination_site"]
    authority_api_key: str = DEV_API_KEYS["authority"]
    # AES-256-GCM key for names and ID numbers at rest (32 bytes, base64url).
    data_key: str = DEV_DATA_KEY
    # HMAC key of the person look-up key (32 bytes, base64url). Never change it in place.
    pepper: str = DEV_PEPPER
    # Contact tracing asks venue-admin at `VENUE_ADMIN_URL` (the shared setting every service
    # reads, set by the local run, the tests' stack, compose and Kubernetes). A trace over 14
    # days of a busy province's records reads many rows: a time-out of its own.
    tracing_timeout_seconds: float = 30.0

    def api_keys(self) -> dict[str, str]:
        return {
            "lab": self.lab_api_key,
            "vaccination_site": self.vaccination_site_api_key,
            "authority": self.authority_api_key,
        }

    def dev_secrets_in_use(self) -> list[str]:
        found = super().dev_secrets_in_use()
        found += [
            f"HEALTH_RECORDS_{role.upper()}_API_KEY"
            for role, key in self.api_keys().items()
            if key == DEV_API_KEYS[role]
        ]
        if self.data_key == DEV_DATA_KEY:
            found.append("HEALTH_RECORDS_DATA_KEY")
        if self.pepper == DEV_PEPPER:
            found.append("HEALTH_RECORDS_PEPPER")
        return found
