"""create_app(): the verifier's lifespan, routers and error handlers."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from hc_common.aio import stop_task
from hc_common.app import create_service_app
from hc_common.auth.tokens import RemoteKeySet
from hc_common.events import envelope as subjects
from hc_common.heap import freeze_heap
from hc_common.http import make_client
from hc_common.runtime import service_runtime
from verifier.access.spool import AccessSpool
from verifier.config import Settings
from verifier.scan.router import DIRECT_ROUTES, SECURITY_SCHEMES
from verifier.scan.router import router as scan_router
from verifier.scan.service import ScanService, ScanState
from verifier.scan_page.router import router as scan_page_router
from verifier.view.state import ScanView
from verifier.view.sync import ViewSync

DESCRIPTION = """The scan (反向扫码): checks the credential in the QR code, the scanner's
permission at the venue, resolves the holder's live status, decides by the venue's rule
and keeps an access record of every decision.

Scans are answered from memory: revocations, members and permissions, devices and venue
rules are loaded from their owners at start and then followed on JetStream; credentials and
statuses are cached (statuses in a bounded LRU) and fetched over HTTP on a miss.
`/readyz` reports ready only once that state is loaded.

A scan is answered within 2 seconds even when a service behind it hangs: the upstream calls
of one scan (a key-set fetch for a token or QR code of a key not yet seen, venue-admin's scan
context, the issuer's credential, health-records' status) share one time budget
(`VERIFIER_SCAN_BUDGET_SECONDS`, 1.5 s by default). A call it does not cover counts as
unreachable and the scan goes on with what it has: without a status, `manual_check` with
`status_unavailable` (never `pass`); with a status up to 10 minutes old, that one, marked
`stale: true`; venue-admin's members, devices and rules from memory; a bearer token whose
key could not be fetched, 401.

Authentication: a user access token (issuer) of a member holding `reverse_scan` at the
venue, or a device token (venue-admin). Errors are RFC 9457 problem details."""


async def _freeze_heap_when_loaded(ready: asyncio.Event) -> None:
    """Once the view is loaded, it too lives as long as the process (`freeze_heap`)."""
    await ready.wait()
    freeze_heap()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No database: the view lives in memory and access records go through the local
        # journal (access/spool.py).
        async with service_runtime(app, settings, streams=("ACCESS",), database=False) as runtime:
            # The journal's lock first: a second verifier on this directory stops here, and
            # the process exits non-zero (access/spool.py).
            spool = AccessSpool(
                settings.spool_dir or settings.data_dir / "access-spool",
                runtime.bus,
                subjects.ACCESS_RECORD_BATCH,
                shutdown_ship_seconds=settings.shutdown_ship_seconds,
            )
            spool.open()
            timeout = settings.upstream_timeout_seconds
            issuer = make_client(
                settings.issuer_url, service_key=settings.service_key, timeout=timeout
            )
            venue_admin = make_client(
                settings.venue_admin_url, service_key=settings.service_key, timeout=timeout
            )
            health_records = make_client(
                settings.health_records_url, service_key=settings.service_key, timeout=timeout
            )
            view = ScanView(status_capacity=settings.status_cache_size)
            sync = ViewSync(
                view,
                runtime.bus,
                issuer=issuer,
                venue_admin=venue_admin,
                health_records=health_records,
                snapshot_page_size=settings.snapshot_page_size,
            )
            state = ScanState(
                issuer_keys=RemoteKeySet(issuer, "/.well-known/jwks.json"),
                device_keys=RemoteKeySet(venue_admin, "/.well-known/jwks.json"),
                issuer=issuer,
                venue_admin=venue_admin,
                health_records=health_records,
                stale_after_seconds=settings.stale_after_seconds,
                scan_budget_seconds=settings.scan_budget_seconds,
                view=view,
                sync=sync,
            )
            await state.issuer_keys.refresh()
            await state.device_keys.refresh()
            spool.start()
            sync.start()
            freeze = (
                asyncio.create_task(_freeze_heap_when_loaded(sync.ready), name="gc-freeze")
                if settings.gc_freeze
                else None
            )
            app.state.scan_service = ScanService(state, spool)

            async def view_loaded() -> bool:
                return sync.ready.is_set()

            # Ready = able to answer scans = the view is loaded. Not the message bus: without
            # it scans are still answered from memory, and their records wait in the journal.
            app.state.readiness = {"view": view_loaded}
            try:
                yield
            finally:
                await stop_task(freeze)
                # The journal first: shipping what it holds gets the whole of the grace period.
                await spool.stop()
                await sync.stop()
                await state.issuer_keys.aclose()
                await state.device_keys.aclose()
                for client in (issuer, venue_admin, health_records):
                    await client.aclose()

    app = create_service_app(
        title="Health code credentials: verifier",
        description=DESCRIPTION,
        lifespan=lifespan,
        routers=[scan_router, scan_page_router],
        cors_origins=settings.cors_origins,
        # The scan's POSTs are answered ahead of the middleware stack (scan/router.py).
        direct_routes=DIRECT_ROUTES,
    )
    _declare_security_schemes(app)
    return app


def _declare_security_schemes(app: FastAPI) -> None:
    """The scan routes parse the Authorization header themselves (a security dependency would
    cost as much as the scan), so FastAPI does not see their credentials: the schemes their
    operations name are added to the document's components here."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            components = document.setdefault("components", {})
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
