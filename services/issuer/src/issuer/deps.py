"""Dependencies of the issuer's routes, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from hc_common.auth.keys import KeyRing
from hc_common.auth.tokens import InvalidToken, KeySet
from hc_common.deps import bearer_token
from hc_common.errors import Unauthorized
from hc_common.sms import OtpCodes
from issuer.config import Settings


async def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def _ring(request: Request) -> KeyRing:
    return request.app.state.ring  # type: ignore[no-any-return]


async def _otp(request: Request) -> OtpCodes:
    return request.app.state.otp  # type: ignore[no-any-return]


async def _current_user(request: Request) -> str:
    keyset: KeySet = request.app.state.keyset
    try:
        claims = keyset.decode(bearer_token(request), "access")
    except InvalidToken:
        raise Unauthorized(
            detail="登录已失效，请重新登录", detail_en="Invalid or expired access token"
        ) from None
    return str(claims["sub"])


SettingsDep = Annotated[Settings, Depends(_settings)]
RingDep = Annotated[KeyRing, Depends(_ring)]
OtpDep = Annotated[OtpCodes, Depends(_otp)]
CurrentUser = Annotated[str, Depends(_current_user)]
