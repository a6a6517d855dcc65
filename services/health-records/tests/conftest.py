"""health-records under test: the app in this process on a fresh database (PostgreSQL when
TEST_DATABASE_URL_PREFIX is set, else SQLite) and the session's NATS."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from hc_common.migrations import upgrade_head
from hc_common.testing import app_client, test_database_url
from health_records import SERVICE_ROOT
from health_records.main import create_app
from health_records.testing import hr_settings


@pytest.fixture(scope="module")
def hr_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh database per test module, migrated to head (sync: Alembic runs its own loop)."""
    name = "svc_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    url = test_database_url(name, tmp_path_factory.mktemp("hr"))
    upgrade_head(SERVICE_ROOT, url)
    return url


@pytest.fixture(scope="module")
def hr_app(hr_database: str, nats_url: str) -> FastAPI:
    """health-records in this process (started by `hr`)."""
    return create_app(hr_settings(hr_database, nats_url))


@pytest.fixture(scope="module")
async def hr(hr_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on health-records in this process."""
    async with app_client(hr_app) as client:
        yield client
