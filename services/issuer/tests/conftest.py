"""The issuer in-process on a fresh database (SQLite, or PostgreSQL with
TEST_DATABASE_URL_PREFIX), the session NATS, and health-records replaced by a fake."""

import base64
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from hc_common.migrations import upgrade_head
from hc_common.testing import app_client, make_phone, test_database_url
from issuer.config import Settings
from issuer.main import create_app

SERVICE_ROOT = Path(__file__).resolve().parents[1]


def photo_b64(kind: str = "JPEG", size: tuple[int, int] = (90, 120)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, (180, 120, 90)).save(out, kind)
    return base64.b64encode(out.getvalue()).decode()


def fake_health_records() -> httpx.AsyncClient:
    """Subject ids derived from the ID number, as health-records would hand them out."""

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        digest = hashlib.sha256(body["id_number"].encode()).hexdigest()[:26].upper()
        return httpx.Response(200, json={"subject_id": digest})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://hr")


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return date(day.year - years, 3, 1)


@dataclass
class Issuer:
    client: httpx.AsyncClient
    app: FastAPI
    database_url: str

    @property
    def service_key(self) -> dict[str, str]:
        """The headers of another service of ours calling `/internal/v1`."""
        return {"Authorization": "Bearer " + self.app.state.settings.service_key}

    async def sign_in(self, phone: str | None = None) -> dict[str, str]:
        phone = phone or make_phone()
        assert (await self.client.post("/v1/auth/otp", json={"phone": phone})).status_code == 202
        code = (await self.client.get("/dev/sms-outbox", params={"phone": phone})).json()[
            "messages"
        ][0]["code"]
        response = await self.client.post("/v1/auth/token", json={"phone": phone, "code": code})
        assert response.status_code == 200, response.text
        return {"Authorization": "Bearer " + response.json()["access_token"]}

    async def face_token(self, name: str, id_number: str) -> str:
        response = await self.client.post(
            "/dev/face-checks", json={"name": name, "id_number": id_number}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["face_check_token"])

    async def apply(
        self,
        user: dict[str, str],
        name: str,
        id_number: str,
        relationship: str = "grandparent",
        **overrides: object,
    ) -> httpx.Response:
        body: dict[str, object] = {
            "name": name,
            "id_number": id_number,
            "relationship": relationship,
            "photo": photo_b64(),
            "face_check_token": await self.face_token(name, id_number),
        }
        body.update(overrides)
        return await self.client.post("/v1/family/credentials", headers=user, json=body)


@pytest.fixture(scope="module")
def issuer_db(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    name = "iss_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    url = test_database_url(name, tmp_path_factory.mktemp("issuer"))
    upgrade_head(SERVICE_ROOT, url)
    return url


def issuer_settings(database_url: str, nats_url: str, **extra: object) -> Settings:
    return Settings(database_url=database_url, nats_url=nats_url, app_env="dev", **extra)


async def started(settings: Settings) -> AsyncIterator[Issuer]:
    app = create_app(settings)
    async with app_client(app) as client:
        await app.state.health_records_http.aclose()
        app.state.health_records_http = fake_health_records()
        yield Issuer(client, app, settings.database_url)


@pytest.fixture(scope="module")
async def issuer(issuer_db: str, nats_url: str) -> AsyncIterator[Issuer]:
    async for running in started(issuer_settings(issuer_db, nats_url)):
        yield running
