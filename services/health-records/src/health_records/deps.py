"""Role checks by API key, and the services of this app as dependencies."""

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from hc_common.crypto import Sealer, decode_key
from hc_common.deps import SessionDep
from hc_common.errors import Forbidden, Unauthorized
from health_records.config import Settings
from health_records.nat.service import NatService
from health_records.person.service import PersonService
from health_records.vaccination.service import VaccinationService


def _presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip()


def require_role(*roles: str) -> Callable[[Request], Awaitable[str]]:
    """A dependency that admits callers holding the API key of one of `roles`."""

    async def check(request: Request) -> str:
        key = _presented_key(request)
        if not key:
            raise Unauthorized(detail="缺少 API 密钥", detail_en="API key required")
        settings: Settings = request.app.state.settings
        keys = settings.api_keys()
        for role, expected in keys.items():
            if hmac.compare_digest(key.encode(), expected.encode()):
                if role in roles:
                    return role
                raise Forbidden(
                    detail="该 API 密钥无权执行此操作",
                    detail_en=f"This endpoint is for the role(s): {', '.join(roles)}",
                )
        raise Unauthorized(detail="API 密钥无效", detail_en="Invalid API key")

    return check


async def _person_service(request: Request, session: SessionDep) -> PersonService:
    settings: Settings = request.app.state.settings
    return PersonService(
        session, Sealer(decode_key(settings.data_key), b"person"), decode_key(settings.pepper)
    )


PersonServiceDep = Annotated[PersonService, Depends(_person_service)]
AuthorityDep = Depends(require_role("authority"))


async def _nat_service(persons: PersonServiceDep) -> NatService:
    return NatService(persons)


async def _vaccination_service(persons: PersonServiceDep) -> VaccinationService:
    return VaccinationService(persons)


NatServiceDep = Annotated[NatService, Depends(_nat_service)]
VaccinationServiceDep = Annotated[VaccinationService, Depends(_vaccination_service)]
LabDep = Depends(require_role("lab"))
VaccinationSiteDep = Depends(require_role("vaccination_site"))
