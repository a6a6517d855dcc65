"""Phone sign-in: a code by SMS, then an access token."""

from fastapi import APIRouter

from issuer.account.schemas import AccessToken, OtpRequest, OtpSent, TokenRequest
from issuer.deps import AccountServiceDep

router = APIRouter(tags=["sign-in"])


@router.post(
    "/v1/auth/otp",
    status_code=202,
    response_model=OtpSent,
    summary="Send a one-time sign-in code by SMS",
    description="At most one code a minute and 10 a day per number (429 with "
    "`Retry-After`). Codes live 5 minutes.",
)
async def send_code(body: OtpRequest, service: AccountServiceDep) -> OtpSent:
    return OtpSent(expires_in=await service.send_code(body.phone))


@router.post(
    "/v1/auth/token",
    response_model=AccessToken,
    summary="Exchange phone and code for an access token",
    description="A wrong or expired code is 401 `invalid_code`; after 5 wrong tries the "
    "code is dead. The first sign-in of a number creates the user.",
)
async def token(body: TokenRequest, service: AccountServiceDep) -> AccessToken:
    access_token, user = await service.sign_in(body.phone, body.code)
    return AccessToken(access_token=access_token, expires_in=service.token_ttl, user_id=user.id)
