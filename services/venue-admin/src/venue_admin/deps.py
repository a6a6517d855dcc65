"""Dependencies of venue-admin's routes: the signed-in user (issuer's key set), services."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hc_common.auth.tokens import InvalidToken, RemoteKeySet
from hc_common.crypto import decode_key
from hc_common.deps import SessionDep, bearer_scheme
from hc_common.errors import Unauthorized
from venue_admin.access.service import AccessRecordService
from venue_admin.clients.issuer import IssuerClient
from venue_admin.device.service import DeviceService
from venue_admin.internal.service import ScanSetupService
from venue_admin.venue.service import VenueService


@dataclass(frozen=True, slots=True)
class User:
    id: str
    masked_phone: str


user_token = bearer_scheme(
    "UserToken", "An access token from the issuer's sign-in (`POST /v1/auth/token`)."
)


async def _current_user(request: Request, token: Annotated[str, Depends(user_token)]) -> User:
    keyset: RemoteKeySet = request.app.state.issuer_keys
    await keyset.ensure_kid(token)
    try:
        claims = keyset.decode(token, "access")
    except InvalidToken:
        raise Unauthorized(
            detail="登录已失效，请重新登录", detail_en="Invalid or expired access token"
        ) from None
    return User(id=str(claims["sub"]), masked_phone=str(claims.get("mph", "")))


async def _venue_service(request: Request, session: SessionDep) -> VenueService:
    state = request.app.state
    return VenueService(session, state.otp, IssuerClient(state.issuer_http))


CurrentUser = Annotated[User, Depends(_current_user)]
VenueServiceDep = Annotated[VenueService, Depends(_venue_service)]


async def _device_service(
    request: Request, session: SessionDep, venues: VenueServiceDep
) -> DeviceService:
    return DeviceService(session, decode_key(request.app.state.settings.pepper), venues)


DeviceServiceDep = Annotated[DeviceService, Depends(_device_service)]


async def _scan_setup_service(session: SessionDep) -> ScanSetupService:
    return ScanSetupService(session)


ScanSetupServiceDep = Annotated[ScanSetupService, Depends(_scan_setup_service)]


async def _access_record_service(
    request: Request, session: SessionDep, venues: VenueServiceDep
) -> AccessRecordService:
    return AccessRecordService(session, request.app.state.db.sessionmaker, venues)


AccessRecordServiceDep = Annotated[AccessRecordService, Depends(_access_record_service)]
