"""create_app(): venue-admin's lifespan, routers and error handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hc_common.app import create_service_app
from hc_common.auth.tokens import RemoteKeySet
from hc_common.crypto import decode_key
from hc_common.errors import register_messages
from hc_common.http import make_client
from hc_common.runtime import service_runtime
from hc_common.sms import DevOutboxSender, HttpSmsSender, OtpCodes, dev_outbox_router
from venue_admin.config import Settings
from venue_admin.db import OtpCode, OutboxEvent, SmsMessage
from venue_admin.internal.router import router as internal_router
from venue_admin.venue.router import router as venue_router

register_messages({
    "invalid_region_code": ("行政区划代码无效", "Invalid region code"),
    "green_required": ("允许的码色必须包含绿码", "allowed_colors must include green"),
    "cannot_remove_main_admin": ("不能移除主管理员", "The main admin cannot be removed"),
    "cannot_change_main_admin": ("不能修改主管理员的权限", "The main admin's permissions are fixed"),
})

DESCRIPTION = """Venues and their main admin (主管理员), sub-admins (分管员) added by a code sent to
their phone, the `reverse_scan` permission, gate devices, venue entry rules and access
records (出入记录).

Authentication: `Authorization: Bearer <access token>` from the issuer's sign-in. Only the
main admin adds or removes members, changes permissions and rules (anyone else: 403
`forbidden`); members read. Errors are RFC 9457 problem details with a stable `code`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(app, settings, outbox=OutboxEvent, streams=("VENUES",)):
            app.state.issuer_http = make_client(settings.issuer_url,
                                                service_key=settings.service_key,
                                                timeout=settings.upstream_timeout_seconds)
            app.state.issuer_keys = RemoteKeySet(app.state.issuer_http,
                                                 "/.well-known/jwks.json")
            await app.state.issuer_keys.refresh()
            sms_http = make_client(settings.sms_endpoint or "http://sms.invalid", timeout=5)
            sender = (DevOutboxSender(SmsMessage) if settings.sms_outbox and settings.is_dev
                      else HttpSmsSender(sms_http, settings.sms_endpoint, settings.sms_api_key,
                                         settings.sms_template))
            app.state.otp = OtpCodes(OtpCode, sender, decode_key(settings.pepper),
                                     invalid_code_status=422)
            try:
                yield
            finally:
                await app.state.issuer_http.aclose()
                await sms_http.aclose()

    routers = [venue_router, internal_router]
    if settings.is_dev:
        routers.append(dev_outbox_router(SmsMessage))
    return create_service_app(title="Health code credentials: venue-admin",
                              description=DESCRIPTION, lifespan=lifespan, routers=routers)


app = create_app()
