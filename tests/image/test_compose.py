"""deploy/compose.yaml's structure (no compose here to run it): every service gets its name,
its bus user and password, and a read-only root; each database's migrations run once, as a
job its service waits for; the verifier's journal is on a volume of its own."""

from pathlib import Path
from typing import Any

import yaml

from hc_common.events.accounts import USERS

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
DATABASE_SERVICES = ("issuer", "venue-admin", "health-records")
SERVICES = (*DATABASE_SERVICES, "verifier")


def load() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def test_each_service_has_its_name_bus_user_and_a_read_only_root() -> None:
    services = load()["services"]
    for name in SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["SERVICE"] == name
        assert env["NATS_USER"] == name
        user_env = "NATS_PASSWORD_" + name.upper().replace("-", "_")
        assert env["NATS_PASSWORD"] == "${" + user_env + ":?}"
        assert env["APP_ENV"] == "prod"
        assert env["DATA_DIR"] == "/data"
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert service["image"] == "healthcode:dev"
        assert service["depends_on"]["nats"] == {"condition": "service_started"}


def test_the_bus_gets_a_password_for_every_user() -> None:
    env = load()["services"]["nats"]["environment"]
    assert {f"NATS_PASSWORD_{user.upper().replace('-', '_')}" for user in USERS} <= set(env)


def test_each_database_is_migrated_once_by_a_job_its_service_waits_for() -> None:
    services = load()["services"]
    for name in DATABASE_SERVICES:
        job = services[f"{name}-migrate"]
        assert job["command"] == ["migrate"]
        assert job["restart"] == "no"
        assert job["environment"]["SERVICE"] == name
        assert job["environment"]["DATABASE_URL"] == services[name]["environment"]["DATABASE_URL"]
        assert job["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"][f"{name}-migrate"] == {
            "condition": "service_completed_successfully"
        }
    # The verifier keeps no database: no job, and it waits for none.
    assert "verifier-migrate" not in services
    assert not any(key.endswith("-migrate") for key in services["verifier"]["depends_on"])


def test_the_verifier_journal_is_on_its_volume_and_it_has_time_to_ship_it() -> None:
    document = load()
    verifier = document["services"]["verifier"]
    assert "verifier:/data" in verifier["volumes"]
    assert "verifier" in document["volumes"]
    assert verifier["environment"]["VERIFIER_SPOOL_DIR"].startswith("/data/")
    assert verifier["stop_grace_period"] == "30s"
