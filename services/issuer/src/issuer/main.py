"""create_app(): the issuer's lifespan, routers and error handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hc_common.app import create_service_app
from hc_common.auth.keys import load_keyring
from hc_common.auth.tokens import KeySet
from hc_common.errors import register_messages
from hc_common.heap import freeze_heap
from hc_common.http import make_client
from hc_common.otp import OtpCodes, dev_outbox_router, make_sender
from hc_common.runtime import service_runtime
from issuer import keys
from issuer.account.router import router as account_router
from issuer.appeal.router import router as appeal_router
from issuer.card.printer import CardPrinter
from issuer.config import Settings
from issuer.credential.router import dev_router as credential_dev_router
from issuer.credential.router import router as credential_router
from issuer.crypto import key_sealer, pepper_of, phone_sealer
from issuer.db import OtpCode, OutboxEvent, SigningKey, SmsMessage
from issuer.facecheck.service import FaceChecks
from issuer.internal.router import router as internal_router

register_messages(
    {
        "not_eligible": ("仅16周岁及以下或60周岁及以上人员可申领", "Not eligible by age"),
        "invalid_photo": ("照片无效", "Invalid photo"),
        "face_check_failed": ("人脸核验未通过", "Face check failed"),
        "credential_exists": ("此人已有有效凭证", "An active credential exists"),
        "credential_not_active": ("凭证已作废或已过期", "The credential is not active"),
        "invalid_id": ("编号格式无效", "Not an id of this system"),
    }
)

DESCRIPTION = """Phone sign-in for app users, family credentials (健康码凭证), their QR codes
and printable cards, revocation, appeals and signing keys.

Errors are RFC 9457 problem details with a stable `code`; texts are Chinese unless the
request sends `Accept-Language: en`. Lists take `limit` (1-500, default 50) and an opaque
`cursor`, and answer `{"items": [...], "next_cursor": ...}`, newest first."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(
            app, settings, outbox=OutboxEvent, streams=("ISSUER",)
        ) as runtime:
            assert runtime.db is not None  # the issuer keeps a database
            async with runtime.db.sessionmaker() as session:
                app.state.ring = await load_keyring(
                    session, SigningKey, key_sealer(settings), keys.PURPOSES
                )
            app.state.keyset = KeySet()
            app.state.keyset.load_ring(app.state.ring)
            app.state.health_records_http = make_client(
                settings.health_records_url,
                service_key=settings.service_key,
                timeout=settings.upstream_timeout_seconds,
            )
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
                OtpCode, sender, pepper_of(settings), policy=settings.otp_policy
            )
            # The sender of sign-in codes also texts appeals' outcomes (the dev outbox, or
            # the gateway); the users' numbers are sealed with one key.
            app.state.sms_sender = sender
            app.state.phone_sealer = phone_sealer(settings)
            app.state.face_checks = FaceChecks(
                settings.face_check_secret.encode(),
                pepper_of(settings),
                settings.face_check_ttl_seconds,
            )
            app.state.card_printer = CardPrinter(settings.card_render_processes)
            app.state.card_printer.start()
            freeze_heap()
            try:
                yield
            finally:
                app.state.card_printer.close()
                await app.state.health_records_http.aclose()
                await sms_http.aclose()

    routers = [keys.router, account_router, credential_router, appeal_router, internal_router]
    if settings.is_dev:
        routers += [credential_dev_router, dev_outbox_router(SmsMessage)]
    return create_service_app(
        title="Health code credentials: issuer",
        description=DESCRIPTION,
        lifespan=lifespan,
        routers=routers,
        cors_origins=settings.cors_origins,
    )


app = create_app()
