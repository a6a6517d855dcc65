"""Role checks by API key, a batch's rows, and the services of this app, as dependencies."""

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from pydantic import BaseModel

from hc_common.crypto import Sealer, decode_key
from hc_common.deps import SessionDep, bearer_scheme
from hc_common.errors import Forbidden, Unauthorized, Unprocessable
from hc_common.i18n import (
    english,
    field_error,
    field_label,
    use_english,
    validation_message,
    wants_english,
)
from health_records.config import Settings
from health_records.nat.service import NatService
from health_records.person.schemas import MAX_ROWS
from health_records.person.service import PersonService
from health_records.vaccination.service import VaccinationService


def require_role(role: str, scheme: str, holder: str) -> Callable[..., Awaitable[str]]:
    """A dependency that admits the callers holding the API key of `role`, presented as a
    bearer token and declared in the OpenAPI document as the security scheme `scheme`: the key
    of another role is 403 `forbidden`, no key or an unknown one 401 `unauthorized`."""
    token = bearer_scheme(scheme, f"The API key of {holder} (role `{role}`).")

    async def check(request: Request, key: Annotated[str, Depends(token)]) -> str:
        settings: Settings = request.app.state.settings
        for owner, expected in settings.api_keys().items():
            if hmac.compare_digest(key.encode(), expected.encode()):
                if owner == role:
                    return role
                raise Forbidden(
                    detail="该 API 密钥无权执行此操作",
                    detail_en=f"This endpoint is for the role {role}",
                )
        raise Unauthorized(detail="API 密钥无效", detail_en="Invalid API key")

    return check


AuthorityDep = Depends(require_role("authority", "AuthorityKey", "the health authority"))
LabDep = Depends(require_role("lab", "LabKey", "a laboratory"))
VaccinationSiteDep = Depends(
    require_role("vaccination_site", "VaccinationSiteKey", "a vaccination site")
)


def _body_error(field: str, code: str, message: str, message_en: str) -> Unprocessable:
    return Unprocessable(
        detail=field_error(field_label((field,)), message),
        detail_en=field_error(field_label((field,), True), message_en, True),
        extra={
            "errors": [
                {"field": field, "code": code, "message": message_en if english() else message}
            ]
        },
    )


def batch_rows(key: str) -> Callable[[Request], Awaitable[list[Any]]]:
    """A dependency that gives the raw rows under `key` of the JSON body (each is validated
    alone later); 422 when the body is not that shape or holds more than MAX_ROWS rows (the
    whole batch is refused then, nothing is stored). It sets the request's language
    (`use_english`) for the route: a rejected row's detail is written in it."""

    async def rows(request: Request) -> list[Any]:
        use_english(wants_english(request.headers.get("accept-language")))
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _body_error(
                "body",
                "invalid_json",
                validation_message("json_invalid", None, False),
                validation_message("json_invalid", None, True),
            ) from None
        if not isinstance(body, dict) or key not in body:
            raise _body_error(
                key,
                "missing",
                validation_message("missing", None, False) + "（应为数组）",
                validation_message("missing", None, True) + " (an array)",
            )
        found = body[key]
        if not isinstance(found, list):
            raise _body_error(
                key,
                "invalid_value",
                validation_message("list_type", None, False),
                validation_message("list_type", None, True),
            )
        if len(found) > MAX_ROWS:
            raise _body_error(
                key,
                "too_many_rows",
                f"每批最多 {MAX_ROWS} 行，收到 {len(found)} 行",
                f"At most {MAX_ROWS} rows a batch, got {len(found)}",
            )
        return found

    return rows


def batch_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of an endpoint whose rows batch_rows reads: `model` by
    reference (FastAPI does not see the model, so main.create_app adds its schema to the
    document's components)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


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
