"""Who delivers a code (or a notice): the dev outbox table, or a production SMS gateway over
HTTP."""

from collections.abc import Mapping
from typing import Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.ids import new_id
from hc_common.otp.models import SmsNoticeOutboxMixin, SmsOutboxMixin
from hc_common.otp.repository import SmsOutboxRepository


class SmsSender(Protocol):
    async def send(self, session: AsyncSession, phone: str, code: str) -> None: ...


class SmsNoticeSender(Protocol):
    """A sender of notices: a text with no code. `template` and `params` are what a gateway
    needs (its templates are approved beforehand); `text` is the same message in words, as
    the dev outbox keeps it."""

    async def send_notice(
        self,
        session: AsyncSession,
        phone: str,
        text: str,
        template: str,
        params: Mapping[str, str],
    ) -> None: ...


class DevOutboxSender:
    """Writes the message to the service's dev outbox table in the caller's transaction."""

    def __init__(self, model: type[SmsOutboxMixin]) -> None:
        self.model = model

    async def send(self, session: AsyncSession, phone: str, code: str) -> None:
        message = self.model(id=new_id(), phone=phone, code=code, sent_at=utcnow())  # type: ignore[call-arg]
        SmsOutboxRepository(session, self.model).add(message)

    async def send_notice(
        self,
        session: AsyncSession,
        phone: str,
        text: str,
        template: str,
        params: Mapping[str, str],
    ) -> None:
        """The notice as a message with `text` and no code, in the caller's transaction."""
        if not issubclass(self.model, SmsNoticeOutboxMixin):
            raise TypeError(f"{self.model.__name__} holds codes only (no SmsNoticeOutboxMixin)")
        message = self.model(id=new_id(), phone=phone, code=None, text=text, sent_at=utcnow())  # type: ignore[call-arg]
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
        await self._post(phone, self.template, {"code": code})

    async def send_notice(
        self,
        session: AsyncSession,
        phone: str,
        text: str,
        template: str,
        params: Mapping[str, str],
    ) -> None:
        """POSTs `{phone, template, params}` (the gateway words it from its template)."""
        await self._post(phone, template, params)

    async def _post(self, phone: str, template: str, params: Mapping[str, str]) -> None:
        response = await self.client.post(
            self.endpoint,
            json={"phone": phone, "template": template, "params": dict(params)},
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
) -> DevOutboxSender | HttpSmsSender:
    """The dev outbox when `outbox` (dev runs only), else the gateway at `endpoint`."""
    if outbox:
        return DevOutboxSender(outbox_model)
    return HttpSmsSender(client, endpoint, api_key, template)
