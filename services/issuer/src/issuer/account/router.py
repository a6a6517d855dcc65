from fastapi import APIRouter

from hc_common.deps import SessionDep
from issuer.account.schemas import (
    AccessToken,
    OtpRequest,
    OtpSent,
    TokenRequest,
)
from issuer.account.service import AccountService
from issuer.deps import OtpDep, RingDep, SettingsDep

router = APIRouter(tags=["sign-in"])


@router.post(
    "/v1/auth/otp",
    status_code=202,
    response_model=OtpSent,
    summary="Send a one-time sign-in code by SMS",
    description="At most one code a minute and 10 a day per number (429 with "
    "`Retry-After`). Codes live 5 minutes.",
)
async def send_code(
    body: OtpRequest, session: SessionDep, otp: OtpDep, ring: RingDep, settings: SettingsDep
) -> OtpSent:
    service = AccountService(session, otp, ring, settings.access_token_ttl_seconds)
    return OtpSent(expires_in=await service.send_code(body.phone))


@router.post(
    "/v1/auth/token",
    response_model=AccessToken,
    summary="Exchange phone and code for an access token",
    description="A wrong or expired code is 401 `invalid_code`; after 5 wrong tries the "
    "code is dead. The first sign-in of a number creates the user.",
)
async def token(
    body: TokenRequest, session: SessionDep, otp: OtpDep, ring: RingDep, settings: SettingsDep
) -> AccessToken:
    service = AccountService(session, otp, ring, settings.access_token_ttl_seconds)
    access_token, user = await service.sign_in(body.phone, body.code)
    return AccessToken(
        access_token=access_token, expires_in=settings.access_token_ttl_seconds, user_id=user.id
    )
