"""create_app(): health-records' lifespan, routers and error handlers."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hc_common.app import create_service_app
from hc_common.middleware import MIB
from hc_common.runtime import service_runtime
from health_records.config import Settings
from health_records.db import OutboxEvent
from health_records.internal.router import router as internal_router
from health_records.nat.router import router as nat_router
from health_records.person.router import router as person_router
from health_records.vaccination.router import router as vaccination_router

DESCRIPTION = """Where the truth about a person's health status lives: NAT results from
laboratories, vaccinations from vaccination sites, code colours from the health authority.

Callers present the API key of their role as `Authorization: Bearer <key>` (or `X-API-Key`):
`lab`, `vaccination_site`, `authority`; a key of another role is 403 `forbidden`, no or an
unknown key 401 `unauthorized`. Every status change is published as an event through a
transactional outbox. A person nobody has reported on has a green code and no NAT or
vaccination data."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, outbox=OutboxEvent, streams=("HEALTH",)):
            # What is alive once the service has started (modules, the app, its runtime) lives
            # as long as the process: kept out of the collector's full passes, which a batch's
            # tens of thousands of rows set off, and which would each walk all of it.
            gc.freeze()
            yield

    return create_service_app(
        title="Health code credentials: health-records",
        description=DESCRIPTION,
        lifespan=lifespan,
        routers=[nat_router, vaccination_router, person_router, internal_router],
        body_limits={"/v1/nat-results/batch": 16 * MIB, "/v1/vaccinations/batch": 16 * MIB},
    )


app = create_app()
