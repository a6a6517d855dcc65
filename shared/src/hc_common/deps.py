"""Request dependencies shared by the services: the session, bearer tokens, the service key."""

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.errors import Unauthorized


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in request.app.state.db.session():
        yield session


# scope="function": the commit happens before the response is sent, never after.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; 401 `unauthorized` otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(detail="缺少 Bearer 令牌", detail_en="Bearer token required")
    return token.strip()


def bearer_scheme(name: str, description: str) -> Callable[..., Awaitable[str]]:
    """A dependency that returns the bearer token of the request (401 `unauthorized` when
    there is none) and declares it in the OpenAPI document as the security scheme `name`, so
    that each operation says which credential it takes."""
    scheme = HTTPBearer(auto_error=False, scheme_name=name, description=description)

    async def token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(scheme)],
    ) -> str:
        if credentials is None or not credentials.credentials.strip():
            raise Unauthorized(detail="缺少 Bearer 令牌", detail_en="Bearer token required")
        return credentials.credentials.strip()

    return token


service_key_token = bearer_scheme(
    "ServiceKey", "The key the services of this system present to each other's /internal routes."
)


async def require_service_key(
    request: Request, token: Annotated[str, Depends(service_key_token)]
) -> None:
    """Internal endpoints: the caller is another service of ours."""
    if not hmac.compare_digest(token.encode(), request.app.state.settings.service_key.encode()):
        raise Unauthorized(detail="服务密钥无效", detail_en="Invalid service key")


ServiceKeyDep = Depends(require_service_key)
