"""Settings shared by every service; each service extends `ServiceSettings` with its own prefix.

`DATABASE_URL`, `NATS_URL`, `APP_ENV`, `SERVICE_KEY` and `LOG_LEVEL` are read without a
prefix so that one container's environment configures one service the usual way.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SERVICE_KEY = "dev-service-key"
DEV_NATS_PORT = 14222
DEV_PORTS = {"issuer": 8001, "venue-admin": 8002, "health-records": 8003, "verifier": 8004}
# The verifier's HTTPS port in the local run when asked (`HC_HTTPS=1`, hc_common.devstack).
DEV_HTTPS_PORT = 8443
# The origins of the local run's verifier (its staff page, `/scan/`), which calls the issuer
# and venue-admin from the browser.
DEV_CORS_ORIGINS = (
    "http://127.0.0.1:8004",
    "http://localhost:8004",
    f"https://127.0.0.1:{DEV_HTTPS_PORT}",
    f"https://localhost:{DEV_HTTPS_PORT}",
)


class DevSecretInProduction(RuntimeError):
    """A production service was configured with a documented dev secret."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "service"
    app_env: Literal["dev", "test", "prod"] = Field("dev", validation_alias=AliasChoices("APP_ENV"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    database_url: str = Field("", validation_alias=AliasChoices("DATABASE_URL"))
    # The message bus: one server or a comma-separated list of a cluster's servers
    # (`tls://` for TLS), and this service's own credentials: a user and password, or a
    # creds file (JWT/NKey). `NATS_TLS_CA` names the CA that signed the servers' certificates.
    nats_url: str = Field(
        f"nats://127.0.0.1:{DEV_NATS_PORT}", validation_alias=AliasChoices("NATS_URL")
    )
    nats_user: str = Field("", validation_alias=AliasChoices("NATS_USER"))
    nats_password: str = Field("", validation_alias=AliasChoices("NATS_PASSWORD"))
    nats_creds: Path | None = Field(None, validation_alias=AliasChoices("NATS_CREDS"))
    nats_tls_ca: Path | None = Field(None, validation_alias=AliasChoices("NATS_TLS_CA"))
    # Replicas of the streams this service declares (3 on a 3-node cluster), and a cap on
    # each stream's declared size (hc_common.events.streams).
    nats_stream_replicas: int = Field(
        1, ge=1, le=5, validation_alias=AliasChoices("NATS_STREAM_REPLICAS")
    )
    nats_stream_max_bytes: int | None = Field(
        None, gt=0, validation_alias=AliasChoices("NATS_STREAM_MAX_BYTES")
    )
    data_dir: Path = Field(Path(".run/data"), validation_alias=AliasChoices("DATA_DIR"))
    service_key: str = Field(DEV_SERVICE_KEY, validation_alias=AliasChoices("SERVICE_KEY"))
    issuer_url: str = Field("http://127.0.0.1:8001", validation_alias=AliasChoices("ISSUER_URL"))
    venue_admin_url: str = Field(
        "http://127.0.0.1:8002", validation_alias=AliasChoices("VENUE_ADMIN_URL")
    )
    health_records_url: str = Field(
        "http://127.0.0.1:8003", validation_alias=AliasChoices("HEALTH_RECORDS_URL")
    )
    upstream_timeout_seconds: float = Field(
        2.0, validation_alias=AliasChoices("UPSTREAM_TIMEOUT_SECONDS")
    )
    # Browser origins allowed to call this service (CORS), comma-separated: the verifier's
    # staff page signs in at the issuer and lists venues at venue-admin from its own origin.
    # Empty: no CORS headers at all. A bearer token, not a cookie: no credentials mode.
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEV_CORS_ORIGINS),
        validation_alias=AliasChoices("CORS_ORIGINS"),
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @property
    def is_dev(self) -> bool:
        return self.app_env == "dev"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / self.service_name}.db"

    def dev_secrets_in_use(self) -> list[str]:
        """Names of settings that still hold a documented dev value; extended per service."""
        return ["SERVICE_KEY"] if self.service_key == DEV_SERVICE_KEY else []

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> "ServiceSettings":
        if self.app_env == "prod":
            found = self.dev_secrets_in_use()
            # Whoever may publish on the bus decides who passes: never without credentials.
            if not (self.nats_user and self.nats_password) and self.nats_creds is None:
                found.append("NATS_USER and NATS_PASSWORD (or NATS_CREDS)")
            if found:
                raise DevSecretInProduction(
                    "APP_ENV=prod refuses dev secrets; set real values for: " + ", ".join(found)
                )
        return self
