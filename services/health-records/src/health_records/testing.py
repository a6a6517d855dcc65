"""Helpers for health-records' tests: keys, rows to order, status look-ups."""

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from hc_common.testing import make_id_number
from health_records.config import Settings

LAB = {"Authorization": "Bearer dev-lab-key"}
SITE = {"Authorization": "Bearer dev-vaccination-site-key"}
AUTHORITY = {"Authorization": "Bearer dev-authority-key"}
SERVICE = {"Authorization": "Bearer dev-service-key"}


def hr_settings(database_url: str, nats_url: str, **nats: Any) -> Settings:
    """Settings of a test's health-records; `nats` adds `NATS_USER`/`NATS_PASSWORD`."""
    return Settings(DATABASE_URL=database_url, NATS_URL=nats_url, APP_ENV="dev", **nats)


def new_id_number() -> str:
    birth = date(1940, 1, 1) + timedelta(days=random.randint(0, 25_000))
    return make_id_number(birth, serial=random.randint(0, 999))


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nat_row(
    id_number: str,
    *,
    result: str = "negative",
    hours_ago: float = 10,
    report_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    sample = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    return {
        "report_id": report_id or uuid.uuid4().hex,
        "id_number": id_number,
        "name": "李秀华",
        "sample_time": iso(sample),
        "report_time": iso(sample + timedelta(hours=4)),
        "result": result,
        "institution": "南宁市第一人民医院",
        **extra,
    }


def vaccination_row(
    id_number: str,
    *,
    dose: int = 1,
    days_ago: float = 100,
    record_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    return {
        "record_id": record_id or uuid.uuid4().hex,
        "id_number": id_number,
        "name": "李秀华",
        "vaccine": "新冠病毒灭活疫苗",
        "manufacturer": "北京生物",
        "dose_number": dose,
        "administered_at": iso(at),
        "site": "青秀区接种点",
        **extra,
    }


async def subject_of(hr: httpx.AsyncClient, id_number: str) -> str:
    response = await hr.post(
        "/internal/v1/subjects", headers=SERVICE, json={"id_number": id_number}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["subject_id"])


async def status_of(hr: httpx.AsyncClient, id_number: str) -> dict[str, Any]:
    subject = await subject_of(hr, id_number)
    response = await hr.get(f"/internal/v1/subjects/{subject}/status", headers=SERVICE)
    assert response.status_code == 200, response.text
    return dict(response.json())
