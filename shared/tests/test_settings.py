import pytest

from hc_common.settings import DevSecretInProduction


def test_production_refuses_dev_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from issuer.config import Settings as IssuerSettings

    monkeypatch.setenv("APP_ENV", "prod")
    with pytest.raises(DevSecretInProduction) as refused:
        IssuerSettings()
    message = str(refused.value)
    for name in (
        "SERVICE_KEY",
        "ISSUER_KEY_ENCRYPTION_KEY",
        "ISSUER_PEPPER",
        "ISSUER_SMS_OUTBOX",
        "NATS_USER",
    ):
        assert name in message


def test_production_starts_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from health_records.config import Settings as HealthSettings

    monkeypatch.setenv("APP_ENV", "prod")
    monkeypatch.setenv("SERVICE_KEY", "s" * 40)
    monkeypatch.setenv("NATS_USER", "health-records")
    monkeypatch.setenv("NATS_PASSWORD", "p" * 40)
    for name, value in {
        "LAB_API_KEY": "l" * 40,
        "VACCINATION_SITE_API_KEY": "v" * 40,
        "AUTHORITY_API_KEY": "a" * 40,
        "DATA_KEY": "cmVhbC1kYXRhLWtleS1vZi0zMi1ieXRlcy0xMjM0NTY",
        "PEPPER": "cmVhbC1wZXBwZXIta2V5LW9mLTMyLWJ5dGVzLTEyMzQ",
    }.items():
        monkeypatch.setenv("HEALTH_RECORDS_" + name, value)
    assert HealthSettings().app_env == "prod"


def test_database_url_defaults_to_sqlite_and_takes_postgres_spellings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hc_common.db import normalise_url
    from verifier.config import Settings

    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert Settings().effective_database_url.startswith("sqlite+aiosqlite:///")
    assert Settings().effective_database_url.endswith("verifier.db")
    assert normalise_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
