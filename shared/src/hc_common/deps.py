"""Request dependencies shared by the services: the session, bearer tokens, the service key."""

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.errors import Unauthorized


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in request.app.state.db.session():
        yield session


# scope="function": the commit happens before the response is sent, never after.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(detail="缺少 Bearer 令牌", detail_en="Bearer token required")
    return token.strip()


async def require_service_key(request: Request) -> None:
    """Internal endpoints: the caller is another service of ours."""
    token = bearer_token(request)
    if not hmac.compare_digest(token.encode(), request.app.state.settings.service_key.encode()):
        raise Unauthorized(detail="服务密钥无效", detail_en="Invalid service key")


ServiceKeyDep = Depends(require_service_key)
