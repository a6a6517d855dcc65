"""Who delivers a code: the dev outbox table, or a production SMS gateway over HTTP."""

from typing import Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.ids import new_id
from hc_common.otp.models import SmsOutboxMixin
from hc_common.otp.repository import SmsOutboxRepository


class SmsSender(Protocol):
    async def send(self, session: AsyncSession, phone: str, code: str) -> None: ...


class DevOutboxSender:
    """Writes the message to the service's dev outbox table in the caller's transaction."""

    def __init__(self, model: type[SmsOutboxMixin]) -> None:
        self.model = model

    async def send(self, session: AsyncSession, phone: str, code: str) -> None:
        message = self.model(id=new_id(), phone=phone, code=code, sent_at=utcnow())  # type: ignore[call-arg]
        SmsOutboxRepository(session, self.model).add(message)


class HttpSmsSender:
    """A production SMS gateway: POSTs `{phone, template, params: {code}}` with an API key."""

    def __init__(
        self, client: httpx.AsyncClient, endpoint: str, api_key: str, template: str
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.api_key = api_key
        self.template = template

    async def send(self, session: AsyncSession, phone: str, code: str) -> None:
        response = await self.client.post(
            self.endpoint,
            json={"phone": phone, "template": self.template, "params": {"code": code}},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        response.raise_for_status()


def make_sender(
    *,
    outbox: bool,
    outbox_model: type[SmsOutboxMixin],
    client: httpx.AsyncClient,
    endpoint: str,
    api_key: str,
    template: str,
) -> SmsSender:
    """The dev outbox when `outbox` (dev runs only), else the gateway at `endpoint`."""
    if outbox:
        return DevOutboxSender(outbox_model)
    return HttpSmsSender(client, endpoint, api_key, template)
