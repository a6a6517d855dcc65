"""create_app(): the verifier's lifespan, routers and error handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hc_common.app import create_service_app
from hc_common.auth.tokens import RemoteKeySet
from hc_common.http import make_client
from hc_common.runtime import service_runtime
from verifier.config import Settings
from verifier.db import OutboxEvent
from verifier.scan.router import router as scan_router
from verifier.scan.service import ScanService, ScanState

DESCRIPTION = """The scan (反向扫码): checks the credential in the QR code, the scanner's
permission at the venue, resolves the holder's live status, decides by the venue's rule
and keeps an access record of every decision.

Authentication: a user access token (issuer) of a member holding `reverse_scan` at the
venue, or a device token (venue-admin). Errors are RFC 9457 problem details."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, outbox=OutboxEvent,
                                   streams=("ACCESS",)) as runtime:
            timeout = settings.upstream_timeout_seconds
            issuer = make_client(settings.issuer_url, service_key=settings.service_key,
                                 timeout=timeout)
            venue_admin = make_client(settings.venue_admin_url, service_key=settings.service_key,
                                      timeout=timeout)
            health_records = make_client(settings.health_records_url,
                                         service_key=settings.service_key, timeout=timeout)
            state = ScanState(
                issuer_keys=RemoteKeySet(issuer, "/.well-known/jwks.json"),
                device_keys=RemoteKeySet(venue_admin, "/.well-known/jwks.json"),
                issuer=issuer, venue_admin=venue_admin, health_records=health_records,
                stale_after_seconds=settings.stale_after_seconds,
            )
            await state.issuer_keys.refresh()
            await state.device_keys.refresh()
            app.state.scan_service = ScanService(state, runtime.db.sessionmaker)
            try:
                yield
            finally:
                for client in (issuer, venue_admin, health_records):
                    await client.aclose()

    return create_service_app(title="Health code credentials: verifier", description=DESCRIPTION,
                              lifespan=lifespan, routers=[scan_router])


app = create_app()
