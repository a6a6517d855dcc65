"""venue-admin on its own: a real database (SQLite or PostgreSQL) and NATS, the issuer
stood in for by a mock transport that publishes a test key set and resolves phones."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from hc_common.auth.keys import KeyRing, LiveKey
from hc_common.auth.tokens import sign
from hc_common.clock import utcnow
from hc_common.events.envelope import Envelope
from hc_common.ids import new_id
from hc_common.masking import mask_phone
from hc_common.migrations import upgrade_head
from hc_common.testing import app_client, eventually, make_phone, test_database_url
from venue_admin import SERVICE_ROOT
from venue_admin.config import Settings
from venue_admin.main import create_app


def _ring() -> KeyRing:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return KeyRing([LiveKey("a-test-" + new_id()[-6:], "access", private, public, utcnow())])


@dataclass
class FakeIssuer:
    """The issuer's JWKS and user resolution, in memory."""

    ring: KeyRing = field(default_factory=_ring)
    users: dict[str, str] = field(default_factory=dict)  # phone -> user_id

    def user_id(self, phone: str) -> str:
        return self.users.setdefault(phone, new_id())

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jwks.json":
            return httpx.Response(200, json=self.ring.jwks())
        if request.url.path == "/internal/v1/users/resolve":
            phone = json.loads(request.content)["phone"]
            return httpx.Response(
                200, json={"user_id": self.user_id(phone), "masked_phone": mask_phone(phone)}
            )
        return httpx.Response(404)

    def token(self, phone: str, ttl: int = 3600) -> str:
        now = utcnow()
        return sign(
            self.ring,
            "access",
            {
                "sub": self.user_id(phone),
                "mph": mask_phone(phone),
                "aud": "hc",
                "iat": int(now.timestamp()),
                "exp": int((now + timedelta(seconds=ttl)).timestamp()),
            },
        )


@dataclass
class User:
    phone: str
    user_id: str
    headers: dict[str, str]


@dataclass
class VenueAdmin:
    """A running venue-admin and the helpers a test needs to act as its users."""

    client: httpx.AsyncClient
    issuer: FakeIssuer
    app: FastAPI
    database_url: str

    def user(self, phone: str | None = None) -> User:
        phone = phone or make_phone()
        return User(
            phone,
            self.issuer.user_id(phone),
            {"Authorization": "Bearer " + self.issuer.token(phone)},
        )

    async def venue(self, admin: User, **overrides: str) -> str:
        body = {
            "name": "南宁东站",
            "category": "train_station",
            "address": "青秀区凤岭北路",
            "region_code": "450103",
            **overrides,
        }
        response = await self.client.post("/v1/venues", headers=admin.headers, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["venue_id"])

    async def sms_code(self, phone: str) -> str:
        messages = (await self.client.get("/dev/sms-outbox", params={"phone": phone})).json()
        return str(messages["messages"][0]["code"])

    async def add_sub_admin(self, venue_id: str, admin: User) -> User:
        staff = self.user()
        sent = await self.client.post(
            f"/v1/venues/{venue_id}/sub-admins/code",
            headers=admin.headers,
            json={"phone": staff.phone},
        )
        assert sent.status_code == 202, sent.text
        added = await self.client.post(
            f"/v1/venues/{venue_id}/sub-admins",
            headers=admin.headers,
            json={"phone": staff.phone, "code": await self.sms_code(staff.phone)},
        )
        assert added.status_code == 201, added.text
        return staff

    async def published(self, subject: str, venue_id: str, count: int) -> list[dict[str, Any]]:
        """The venue's events of `subject` in the VENUES stream, oldest first, once the relay
        has published at least `count` of them (else what it has published within 10 s)."""
        js = self.app.state.bus.js

        async def read() -> list[dict[str, Any]]:
            sub = await js.pull_subscribe(subject, stream="VENUES")  # from the stream's start
            found = []
            try:
                while True:
                    try:
                        messages = await sub.fetch(500, timeout=0.5)
                    except TimeoutError:  # the stream holds no more
                        return found
                    for message in messages:
                        data = Envelope.from_bytes(message.data).data
                        if data.get("venue_id") == venue_id:
                            found.append(data)
            finally:
                await sub.unsubscribe()

        async def enough() -> list[dict[str, Any]] | None:
            found = await read()
            return found if len(found) >= count else None

        return await eventually(enough, timeout=10, interval=0.1) or await read()


def make_settings(database_url: str, nats_url: str, **extra: object) -> Settings:
    return Settings(
        database_url=database_url,
        nats_url=nats_url,
        app_env="dev",
        access_consumer_durable="va-test-" + new_id(),
        access_batch_consumer_durable="va-test-batches-" + new_id(),
        **extra,
    )


@pytest.fixture(scope="module")
async def va(
    nats_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[VenueAdmin]:
    name = "va_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    # Both helpers run their own event loop: keep them off this one.
    url = await asyncio.to_thread(test_database_url, name, tmp_path_factory.mktemp(name))
    await asyncio.to_thread(upgrade_head, SERVICE_ROOT, url)
    issuer = FakeIssuer()
    app = create_app(
        make_settings(url, nats_url), issuer_transport=httpx.MockTransport(issuer.handle)
    )
    async with app_client(app) as client:
        await app.state.bus.wait_ready(10)
        yield VenueAdmin(client, issuer, app, url)
    # ACCESS is a work queue, which takes one consumer per subject: a module's durable
    # consumer left behind would refuse the next module's (BadRequest) on a shared server.
    nc = await nats.connect(nats_url)
    settings = app.state.settings
    try:
        for durable in (settings.access_consumer_durable, settings.access_batch_consumer_durable):
            try:
                await nc.jetstream().delete_consumer("ACCESS", durable)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()
