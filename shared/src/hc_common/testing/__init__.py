"""Helpers for tests: valid identity numbers and phone numbers to order, waiting for what
happens elsewhere, service apps in process, a NATS server of a test's own."""

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx

from hc_common.devstack import EmbeddedNats
from hc_common.events.accounts import OPERATOR
from hc_common.idnumber import check_character

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import MetaData

    from hc_common.db import Database


# A 1×1 PNG, base64: the photo of an application (the dev face check does not look at it).
PHOTO_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)

_ISSUED: set[str] = set()
_REGIONS = ("450103", "450102", "450105", "450107", "450108", "450109", "450302", "450502")


def make_id_number(birth: date, region: str = "450103", serial: int | None = None) -> str:
    """A valid GB 11643-1999 number for a person born on `birth`; without a `serial`, one
    this process has not handed out before (tests that share a birth date get different
    people, not a surprise `credential_exists`)."""
    if serial is not None:
        first17 = f"{region}{birth:%Y%m%d}{serial:03d}"
        return first17 + check_character(first17)
    for candidate_region in (region, *_REGIONS):
        for _ in range(200):
            first17 = f"{candidate_region}{birth:%Y%m%d}{random.randint(100, 999):03d}"
            number = first17 + check_character(first17)
            if number not in _ISSUED:
                _ISSUED.add(number)
                return number
    raise RuntimeError("no unused identity number left for that birth date")


def make_phone() -> str:
    return "13" + f"{random.randint(0, 999_999_999):09d}"


T = TypeVar("T")


def poll(check: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """The first truthy value of `check` within `timeout` seconds, else its last value (for
    the caller to assert on, so that a failure shows what was last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float, interval: float = 0.05
) -> T:
    """`poll` for a coroutine function, in a test's event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


def recreate_postgres_database(url: str) -> str:
    """Drop and create the database the URL names (tests on fresh databases); returns the
    URL in its asyncpg spelling."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    from hc_common.db import normalise_url

    target = make_url(normalise_url(url))
    name = target.database
    assert name and name.replace("_", "").isalnum(), "a plain database name"

    async def run() -> None:
        conn = await asyncpg.connect(
            user=target.username or "postgres",
            password=target.password,
            host=target.host or "127.0.0.1",
            port=target.port or 5432,
            database="postgres",
        )
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    # Its own thread and loop: callable from sync fixtures and from inside async tests alike.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()
    return target.render_as_string(hide_password=False)


def test_database_url(name: str, tmp_dir: Path) -> str:
    """A fresh database for one test module or suite: PostgreSQL named `<prefix><name>` when
    `TEST_DATABASE_URL_PREFIX` is set, else a new SQLite file under `tmp_dir`."""
    import os

    prefix = os.environ.get("TEST_DATABASE_URL_PREFIX")
    if prefix:
        return recreate_postgres_database(prefix + name.replace("-", "_"))
    return f"sqlite+aiosqlite:///{tmp_dir / name}.db"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@asynccontextmanager
async def replica_databases(url: str, metadata: "MetaData") -> AsyncIterator[list["Database"]]:
    """Two engines on one fresh database with `metadata`'s tables, as two replicas of a
    service would hold: for tests of what must hold when replicas race."""
    from hc_common.db import Database

    first, second = Database(url), Database(url)
    async with first.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield [first, second]
    finally:
        await first.dispose()
        await second.dispose()


async def reset_streams(nats_url: str) -> None:
    """Delete the system's JetStream streams on a shared NATS, so a test run starts clean."""
    import nats
    from nats.js.errors import NotFoundError

    from hc_common.events.envelope import STREAMS

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for stream in STREAMS:
            try:
                await js.delete_stream(stream)
            except NotFoundError:
                continue
    finally:
        await nc.close()


@asynccontextmanager
async def app_client(app: "FastAPI") -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a service app in this process, its lifespan run around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


class NatsServer(EmbeddedNats):
    """A nats-server with JetStream and the system's users (authentication on) of a test's
    own, on a free port with its own store, that the test may stop and start again (same
    port, same store and passwords: what JetStream kept survives, as after a real restart).
    `url_as(user)` is its URL with a user's credentials in it, for code that takes a URL."""

    def __init__(self) -> None:
        import tempfile

        from hc_common.devstack import free_port

        super().__init__(Path(tempfile.mkdtemp(prefix="hc-nats-")), free_port())

    def url_as(self, user: str = OPERATOR) -> str:
        return f"nats://{user}:{self.passwords()[user]}@{self.host}:{self.port}"
