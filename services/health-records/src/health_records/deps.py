"""Role checks by API key, a batch's rows, and the services of this app, as dependencies."""

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from hc_common.crypto import Sealer, decode_key
from hc_common.deps import SessionDep
from hc_common.errors import Forbidden, Unauthorized, Unprocessable
from health_records.config import Settings
from health_records.nat.service import NatService
from health_records.person.schemas import MAX_ROWS
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


AuthorityDep = Depends(require_role("authority"))
LabDep = Depends(require_role("lab"))
VaccinationSiteDep = Depends(require_role("vaccination_site"))


def _body_error(field: str, code: str, message: str, message_en: str) -> Unprocessable:
    return Unprocessable(
        detail=message,
        detail_en=message_en,
        extra={"errors": [{"field": field, "code": code, "message": message_en}]},
    )


def batch_rows(key: str) -> Callable[[Request], Awaitable[list[Any]]]:
    """A dependency that gives the raw rows under `key` of the JSON body (each is validated
    alone later); 422 when the body is not that shape or holds more than MAX_ROWS rows (the
    whole batch is refused then, nothing is stored)."""

    async def rows(request: Request) -> list[Any]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _body_error(
                "body",
                "invalid_json",
                "请求体不是有效的 JSON",
                "The request body is not valid JSON",
            ) from None
        if not isinstance(body, dict) or key not in body:
            raise _body_error(key, "missing", f"缺少 {key} 数组", f"`{key}` (an array) is required")
        found = body[key]
        if not isinstance(found, list):
            raise _body_error(
                key, "invalid_value", f"{key} 必须是数组", f"`{key}` must be an array"
            )
        if len(found) > MAX_ROWS:
            raise _body_error(
                key,
                "too_many_rows",
                f"每批最多 {MAX_ROWS} 行",
                f"At most {MAX_ROWS} rows a batch, got {len(found)}",
            )
        return found

    return rows


NatRowsDep = Annotated[list[Any], Depends(batch_rows("results"))]
VaccinationRowsDep = Annotated[list[Any], Depends(batch_rows("records"))]


async def _person_service(request: Request, session: SessionDep) -> PersonService:
    settings: Settings = request.app.state.settings
    return PersonService(
        session, Sealer(decode_key(settings.data_key), b"person"), decode_key(settings.pepper)
    )


PersonServiceDep = Annotated[PersonService, Depends(_person_service)]


async def _nat_service(session: SessionDep, persons: PersonServiceDep) -> NatService:
    return NatService(session, persons)


async def _vaccination_service(
    session: SessionDep, persons: PersonServiceDep
) -> VaccinationService:
    return VaccinationService(session, persons)


NatServiceDep = Annotated[NatService, Depends(_nat_service)]
VaccinationServiceDep = Annotated[VaccinationService, Depends(_vaccination_service)]
