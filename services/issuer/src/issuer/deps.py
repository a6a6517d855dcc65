"""Dependencies of the issuer's routes, as `Annotated` aliases: settings, keys, the signed-in
user, the health authority's staff key, and the domain services on the request's session."""

import hmac
from typing import Annotated

from fastapi import Depends, Request

from hc_common.auth.keys import KeyRing
from hc_common.auth.tokens import InvalidToken, KeySet
from hc_common.deps import SessionDep, bearer_scheme
from hc_common.errors import Unauthorized
from hc_common.otp import OtpCodes
from issuer.account.service import AccountService
from issuer.appeal.service import AppealService
from issuer.clients.health_records import HealthRecordsClient
from issuer.config import Settings
from issuer.credential.service import CredentialService
from issuer.crypto import pepper_of
from issuer.facecheck.service import FaceChecks


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _ring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.ring
    return ring


async def _otp(request: Request) -> OtpCodes:
    otp: OtpCodes = request.app.state.otp
    return otp


async def _face_checks(request: Request) -> FaceChecks:
    face_checks: FaceChecks = request.app.state.face_checks
    return face_checks


user_token = bearer_scheme(
    "UserToken",
    "The signed-in app user's access token, from `POST /v1/auth/token` (a JWT the issuer "
    "signs; its keys are at `/.well-known/jwks.json`).",
)


async def _current_user(request: Request, token: Annotated[str, Depends(user_token)]) -> str:
    keyset: KeySet = request.app.state.keyset
    try:
        claims = keyset.decode(token, "access")
    except InvalidToken:
        raise Unauthorized(
            detail="登录已失效，请重新登录", detail_en="Invalid or expired access token"
        ) from None
    return str(claims["sub"])


authority_key = bearer_scheme(
    "AuthorityKey",
    "The health authority's staff key (`ISSUER_AUTHORITY_API_KEY`): appeal review. An app "
    "user's access token is not it.",
)


async def _require_authority(
    request: Request, token: Annotated[str, Depends(authority_key)]
) -> None:
    settings: Settings = request.app.state.settings
    # Constant time: the comparison does not tell how much of a guess was right.
    if not hmac.compare_digest(token.encode(), settings.authority_api_key.encode()):
        raise Unauthorized(detail="审核密钥无效", detail_en="Invalid authority key")


# Routes of the health authority's staff: `dependencies=[AuthorityDep]`.
AuthorityDep = Depends(_require_authority)

SettingsDep = Annotated[Settings, Depends(_settings)]
RingDep = Annotated[KeyRing, Depends(_ring)]
OtpDep = Annotated[OtpCodes, Depends(_otp)]
FaceChecksDep = Annotated[FaceChecks, Depends(_face_checks)]
CurrentUser = Annotated[str, Depends(_current_user)]


async def _account_service(
    request: Request, session: SessionDep, otp: OtpDep, ring: RingDep, settings: SettingsDep
) -> AccountService:
    return AccountService(
        session, otp, ring, settings.access_token_ttl_seconds, request.app.state.phone_sealer
    )


async def _credential_service(
    request: Request,
    session: SessionDep,
    ring: RingDep,
    settings: SettingsDep,
    face_checks: FaceChecksDep,
) -> CredentialService:
    return CredentialService(
        session,
        ring,
        pepper_of(settings),
        face_checks,
        HealthRecordsClient(request.app.state.health_records_http),
    )


async def _appeal_service(request: Request, session: SessionDep) -> AppealService:
    state = request.app.state
    return AppealService(session, state.sms_sender, state.phone_sealer)


AccountServiceDep = Annotated[AccountService, Depends(_account_service)]
CredentialServiceDep = Annotated[CredentialService, Depends(_credential_service)]
AppealServiceDep = Annotated[AppealService, Depends(_appeal_service)]
