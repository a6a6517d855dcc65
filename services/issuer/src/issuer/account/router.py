"""Phone sign-in: a code by SMS, then an access token."""

from fastapi import APIRouter

from hc_common.app import problem_responses
from issuer.account.schemas import AccessToken, OtpRequest, OtpSent, TokenRequest
from issuer.deps import AccountServiceDep

router = APIRouter(tags=["sign-in"])


@router.post(
    "/v1/auth/otp",
    status_code=202,
    response_model=OtpSent,
    responses=problem_responses(429, 503),
    summary="Send a one-time sign-in code by SMS",
    description="Mainland mobile numbers only (11 ASCII digits starting with 1; else 422 "
    "`invalid_phone`). At most one code a minute and 10 a day (China time) per number, "
    "however many requests arrive at once: else 429 `too_many_requests` with "
    "`Retry-After`. Codes live 5 minutes. 503 when the SMS gateway fails (the code is "
    "then not counted).",
)
async def send_code(body: OtpRequest, service: AccountServiceDep) -> OtpSent:
    return OtpSent(expires_in=await service.send_code(body.phone))


@router.post(
    "/v1/auth/token",
    response_model=AccessToken,
    summary="Exchange phone and code for an access token",
    description="A wrong or expired code is 401 `invalid_code`; after 5 wrong tries the "
    "code is dead (tries are counted across concurrent requests), and a code signs in "
    "once. The first sign-in of a number creates the user.",
)
async def token(body: TokenRequest, service: AccountServiceDep) -> AccessToken:
    access_token, user = await service.sign_in(body.phone, body.code)
    return AccessToken(access_token=access_token, expires_in=service.token_ttl, user_id=user.id)
