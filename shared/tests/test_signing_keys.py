"""Signing keys in a service's own table (SQLite, or PostgreSQL with
TEST_DATABASE_URL_PREFIX): replicas that start together on an empty table create one first
key per purpose between them and publish the same key set, so a token signed by either is
accepted by a service that fetched the key set from the other."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase

from hc_common.auth.keys import KeyRing, SigningKeyMixin, load_keyring
from hc_common.crypto import Sealer
from hc_common.db import Database
from hc_common.testing import replica_databases, test_database_url

PURPOSES = ("credential", "access")
SEALER = Sealer(b"k" * 32, b"signing keys under test")


class Base(DeclarativeBase):
    pass


class Key(Base, SigningKeyMixin):
    __tablename__ = "signing_keys_under_test"


@pytest.fixture
async def replicas(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[Database]]:
    """Two engines on one fresh, empty table, as two replicas of a service would hold."""
    url = test_database_url("signing_keys", tmp_path_factory.mktemp("keys"))
    async with replica_databases(url, Base.metadata) as databases:
        yield databases


async def start(db: Database) -> KeyRing:
    async with db.sessionmaker() as session:
        return await load_keyring(session, Key, SEALER, PURPOSES)


async def test_replicas_starting_together_make_one_key_per_purpose_and_publish_it_alike(
    replicas: list[Database],
) -> None:
    rings = await asyncio.gather(*(start(replicas[i % 2]) for i in range(6)))

    async with replicas[0].sessionmaker() as session:
        rows = (await session.scalars(select(Key))).all()
    assert sorted(row.purpose for row in rows) == sorted(PURPOSES)
    published = {str(ring.jwks()) for ring in rings}
    assert len(published) == 1
    assert {ring.current("credential").kid for ring in rings} == {
        next(row.kid for row in rows if row.purpose == "credential")
    }


async def test_a_restart_finds_the_keys_and_makes_none(replicas: list[Database]) -> None:
    first = await start(replicas[0])
    again = await start(replicas[1])

    assert again.jwks() == first.jwks()
    async with replicas[1].sessionmaker() as session:
        assert len((await session.scalars(select(Key))).all()) == len(PURPOSES)
