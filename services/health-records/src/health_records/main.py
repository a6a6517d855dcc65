"""create_app(): health-records' lifespan, routers and error handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hc_common.app import create_service_app
from hc_common.heap import freeze_heap
from hc_common.http import make_client
from hc_common.middleware import MIB
from hc_common.runtime import service_runtime
from health_records.config import Settings
from health_records.db import OutboxEvent
from health_records.internal.router import router as internal_router
from health_records.nat.router import router as nat_router
from health_records.nat.schemas import NatBatch
from health_records.person.router import router as person_router
from health_records.tracing.router import router as tracing_router
from health_records.vaccination.router import router as vaccination_router
from health_records.vaccination.schemas import VaccinationBatch

DESCRIPTION = """Where the truth about a person's health status lives: NAT results from
laboratories, vaccinations from vaccination sites, code colours from the health authority.

Callers present the API key of their role as `Authorization: Bearer <key>` (the security
schemes `LabKey`, `VaccinationSiteKey`, `AuthorityKey`; the other services `ServiceKey`); a key
of another role is 403 `forbidden`, no or an unknown key 401 `unauthorized`. Every status
change is published as an event through a transactional outbox. A person nobody has reported
on has a green code and no NAT or vaccination data.

Contact tracing (时空伴随, authority): a case's visits and the persons scanned near them in time
and place, from venue-admin's access records (`VENUE_ADMIN_URL`), their codes turned when asked;
every request kept for the audit."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, outbox=OutboxEvent, streams=("HEALTH",)):
            # Contact tracing reads venue-admin's access records.
            app.state.venue_admin_http = make_client(
                settings.venue_admin_url,
                service_key=settings.service_key,
                timeout=settings.tracing_timeout_seconds,
            )
            freeze_heap()
            try:
                yield
            finally:
                await app.state.venue_admin_http.aclose()

    app = create_service_app(
        title="Health code credentials: health-records",
        description=DESCRIPTION,
        lifespan=lifespan,
        routers=[nat_router, vaccination_router, person_router, internal_router, tracing_router],
        cors_origins=settings.cors_origins,
        body_limits={"/v1/nat-results/batch": 16 * MIB, "/v1/vaccinations/batch": 16 * MIB},
    )
    # The batches' bodies, read raw (each row judged alone) and documented by reference.
    document_models(app, NatBatch, VaccinationBatch)
    return app


def document_models(app: FastAPI, *models: type[BaseModel]) -> None:
    """Adds the schemas of `models` (and of the models they hold) to the components of the
    app's OpenAPI document, for the operations that name them without FastAPI reading them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # kept by the app as its document: completed in place
        _, found = models_json_schema(
            [(model, "validation") for model in models],
            ref_template="#/components/schemas/{model}",
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in found.get("$defs", {}).items():
            if schemas.setdefault(name, schema) != schema:
                raise RuntimeError(f"two schemas named {name} in the OpenAPI document")
        return document

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
