"""`GET /dev/sms-outbox?phone=`: what a service would have sent; included only with APP_ENV=dev."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hc_common.clock import rfc3339
from hc_common.deps import SessionDep
from hc_common.otp.models import SmsOutboxMixin
from hc_common.otp.repository import SmsOutboxRepository
from hc_common.phone import Phone


class Message(BaseModel):
    phone: str
    # A sign-in or sub-admin code; null for a notice (e.g. an appeal's outcome).
    code: str | None
    # A notice's words; null for a code (and in an outbox that holds codes only).
    text: str | None = None
    sent_at: str


class Outbox(BaseModel):
    messages: list[Message]


def dev_outbox_router(model: type[SmsOutboxMixin]) -> APIRouter:
    """The route over one service's outbox table."""
    router = APIRouter(tags=["dev"])

    @router.get(
        "/dev/sms-outbox",
        response_model=Outbox,
        summary="Dev only: the SMS messages this service would have sent, newest first",
        description="Each message is `{phone, code, text, sent_at}`: a code message has "
        "`code` and `text` null; a notice (e.g. an appeal's outcome) has `text` and `code` "
        "null.",
    )
    async def sms_outbox(
        session: SessionDep, phone: Annotated[Phone | None, Query()] = None
    ) -> Outbox:
        rows = await SmsOutboxRepository(session, model).newest(phone)
        return Outbox(
            messages=[
                Message(
                    phone=r.phone,
                    code=r.code,
                    text=getattr(r, "text", None),
                    sent_at=rfc3339(r.sent_at),
                )
                for r in rows
            ]
        )

    return router
