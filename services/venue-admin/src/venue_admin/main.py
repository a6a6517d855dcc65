"""create_app(): venue-admin's lifespan, routers and error handlers."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from hc_common.aio import stop_task
from hc_common.app import create_service_app
from hc_common.auth.keys import load_keyring
from hc_common.auth.tokens import RemoteKeySet
from hc_common.crypto import Sealer, decode_key
from hc_common.errors import register_messages
from hc_common.events.consumer import Consumer
from hc_common.events.envelope import ACCESS_RECORD_BATCH, ACCESS_RECORD_CREATED, Envelope
from hc_common.heap import freeze_heap
from hc_common.http import make_client
from hc_common.otp import OtpCodes, dev_outbox_router, make_sender
from hc_common.runtime import service_runtime
from venue_admin.access import service as access_records
from venue_admin.access.handlers import store_access_records
from venue_admin.access.router import router as access_router
from venue_admin.config import Settings
from venue_admin.db import OtpCode, OutboxEvent, SigningKey, SmsMessage
from venue_admin.device.router import keys_router
from venue_admin.device.router import router as device_router
from venue_admin.internal.router import router as internal_router
from venue_admin.tracing.router import router as tracing_router
from venue_admin.venue.router import router as venue_router

register_messages(
    {
        "invalid_region_code": ("行政区划代码无效", "Invalid region code"),
        "green_required": ("允许的码色必须包含绿码", "allowed_colors must include green"),
        "cannot_remove_main_admin": ("不能移除主管理员", "The main admin cannot be removed"),
        "cannot_change_main_admin": (
            "不能修改主管理员的权限",
            "The main admin's permissions are fixed",
        ),
        "invalid_credentials": ("闸机编号或密钥错误", "Wrong device id or secret"),
    }
)

DESCRIPTION = """Venues and their main admin (主管理员), sub-admins (分管员) added by a code sent to
their phone, the `reverse_scan` permission, gate devices, venue entry rules and access
records (出入记录).

Authentication: `Authorization: Bearer <access token>` from the issuer's sign-in. Only the
main admin adds or removes members, changes permissions and rules (anyone else: 403
`forbidden`); members read. Errors are RFC 9457 problem details with a stable `code`.

Gate devices trade their id and secret for a device token (`POST /v1/devices/token`), an
EdDSA JWT whose keys are at `/.well-known/jwks.json`. Access records arrive from the
verifier over JetStream (stream `ACCESS`, durable consumer) and are stored once per
`record_id`."""


def key_sealer(settings: Settings) -> Sealer:
    return Sealer(decode_key(settings.key_encryption_key), b"venue-admin-signing-keys")


def create_app(
    settings: Settings | None = None, *, issuer_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The app; `issuer_transport` lets tests stand in for the issuer."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(
            app, settings, outbox=OutboxEvent, streams=("VENUES", "ACCESS", "DEAD_LETTERS")
        ) as runtime:
            assert runtime.db is not None  # service_runtime makes one unless told not to
            sessionmaker = runtime.db.sessionmaker
            async with sessionmaker() as session:
                app.state.ring = await load_keyring(
                    session, SigningKey, key_sealer(settings), ("device",)
                )
            app.state.issuer_http = (
                make_client(
                    settings.issuer_url,
                    service_key=settings.service_key,
                    timeout=settings.upstream_timeout_seconds,
                )
                if issuer_transport is None
                else httpx.AsyncClient(base_url=settings.issuer_url, transport=issuer_transport)
            )
            app.state.issuer_keys = RemoteKeySet(app.state.issuer_http, "/.well-known/jwks.json")
            await app.state.issuer_keys.refresh()
            sms_http = make_client(settings.sms_endpoint or "http://sms.invalid", timeout=5)
            sender = make_sender(
                outbox=settings.sms_outbox and settings.is_dev,
                outbox_model=SmsMessage,
                client=sms_http,
                endpoint=settings.sms_endpoint,
                api_key=settings.sms_api_key,
                template=settings.sms_template,
            )
            app.state.otp = OtpCodes(
                OtpCode,
                sender,
                decode_key(settings.pepper),
                policy=settings.otp_policy,
                invalid_code_status=422,
            )

            async def handle_access_records(envelopes: list[Envelope]) -> None:
                await store_access_records(sessionmaker, envelopes)

            ping = runtime.db.ping

            def access_consumer(durable: str, subject: str, batch: int) -> Consumer:
                return Consumer(
                    runtime.bus,
                    stream="ACCESS",
                    durable=durable,
                    subject=subject,
                    handler=handle_access_records,
                    max_deliver=settings.access_consumer_max_deliver,
                    retry_delay=settings.access_consumer_retry_delay_seconds,
                    service=settings.service_name,
                    # The database away is an outage: records wait in ACCESS, not dead-lettered.
                    healthy=ping,
                    # Validated as decoded (one pass over the JSON); an event that does not fit
                    # goes to the dead letters at once, whole (a batch with every record in
                    # it), where store_access_records would have dropped it.
                    validate_payloads=True,
                    batch=batch,
                )

            app.state.access_consumers = [
                # Up to 200 records an event: 8 events are one write of up to 1,600 rows.
                access_consumer(settings.access_batch_consumer_durable, ACCESS_RECORD_BATCH, 8),
                access_consumer(settings.access_consumer_durable, ACCESS_RECORD_CREATED, 500),
            ]
            for consumer in app.state.access_consumers:
                consumer.start()
            purge_task = asyncio.create_task(
                access_records.purge_forever(
                    sessionmaker,
                    settings.access_record_retention_days,
                    settings.access_record_purge_interval_seconds,
                ),
                name="access-record-purge",
            )
            freeze_heap()
            try:
                yield
            finally:
                await stop_task(purge_task)
                for consumer in app.state.access_consumers:
                    await consumer.stop()
                await app.state.issuer_keys.aclose()
                await app.state.issuer_http.aclose()
                await sms_http.aclose()

    routers = [keys_router, venue_router, device_router, access_router, internal_router]
    routers.append(tracing_router)
    if settings.is_dev:
        routers.append(dev_outbox_router(SmsMessage))
    return create_service_app(
        title="Health code credentials: venue-admin",
        description=DESCRIPTION,
        lifespan=lifespan,
        routers=routers,
        cors_origins=settings.cors_origins,
    )


app = create_app()
