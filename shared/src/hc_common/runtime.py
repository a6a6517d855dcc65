"""What every service's lifespan sets up: logging, database, message bus, outbox relay,
readiness checks; and tears down in reverse."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hc_common.db import Database
from hc_common.events.bus import EventBus
from hc_common.events.outbox import OutboxMixin, OutboxRelay
from hc_common.health import ReadinessCheck
from hc_common.logging import configure_logging
from hc_common.settings import ServiceSettings

log = logging.getLogger("hc.runtime")


class Runtime:
    """A started service's database (None for a service that keeps none), bus and relay."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        outbox: type[OutboxMixin] | None = None,
        streams: tuple[str, ...] = (),
        database: bool = True,
    ) -> None:
        # Without a database (the verifier) there is no outbox either; `app.state.readiness`
        # then holds the bus only, which the service may replace with what it means by ready.
        self.settings = settings
        self.db = Database(settings.effective_database_url) if database else None
        self.bus = EventBus.from_settings(settings, streams)
        self.relay: OutboxRelay | None = None
        if outbox is not None:
            if self.db is None:
                raise ValueError("an outbox needs a database")
            self.relay = OutboxRelay(self.db, outbox, self.bus)
            self.db.on_events_committed.append(self.relay.notify)


@asynccontextmanager
async def service_runtime(
    app: FastAPI,
    settings: ServiceSettings,
    *,
    outbox: type[OutboxMixin] | None = None,
    streams: tuple[str, ...] = (),
    database: bool = True,
) -> AsyncIterator[Runtime]:
    configure_logging(settings.service_name, settings.log_level)
    runtime = Runtime(settings, outbox=outbox, streams=streams, database=database)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.bus = runtime.bus

    async def bus_ready() -> bool:
        return runtime.bus.connected

    readiness: dict[str, ReadinessCheck] = {}
    if runtime.db is not None:
        app.state.db = runtime.db
        readiness["database"] = runtime.db.ping
    readiness["message_bus"] = bus_ready
    app.state.readiness = readiness
    app.state.health_detail = {"message_bus": runtime.bus.describe}
    await runtime.bus.start(wait=3)
    if runtime.relay is not None:
        runtime.relay.start()
    log.info("started", extra={"env": settings.app_env})
    try:
        yield runtime
    finally:
        if runtime.relay is not None:
            await runtime.relay.stop()
        await runtime.bus.close()
        if runtime.db is not None:
            await runtime.db.dispose()
        log.info("stopped")
