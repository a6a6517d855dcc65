"""`/internal/v1`, for the other services (service key): what the verifier keeps of a
credential, the revocations for its cold start, and the user of a phone number."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hc_common.deps import ServiceKeyDep
from hc_common.events.schemas import CredentialChanged
from hc_common.hygiene import EntityId
from hc_common.phone import Phone
from issuer.credential.events import credential_changed
from issuer.deps import AccountServiceDep, CredentialServiceDep

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[ServiceKeyDep])


@router.get(
    "/credentials/{credential_id}",
    summary="What the verifier keeps of a credential (the data of its events)",
)
async def credential(credential_id: str, service: CredentialServiceDep) -> CredentialChanged:
    return credential_changed(await service.get(credential_id))


class Revocations(BaseModel):
    items: list[str]
    next_cursor: str | None


@router.get(
    "/revocations",
    summary="The ids of all revoked credentials, expired ones included (cold start)",
    description="In id order; `after` is the previous page's `next_cursor`.",
)
async def revocations(
    service: CredentialServiceDep,
    limit: int = Query(5000, ge=1, le=50000),
    after: Annotated[EntityId | None, Query()] = None,
) -> Revocations:
    page = await service.revoked_ids(limit, after)
    return Revocations(items=page.items, next_cursor=page.next_cursor)


class ResolveUser(BaseModel):
    phone: Phone


class ResolvedUser(BaseModel):
    user_id: str
    masked_phone: str


@router.post("/users/resolve", summary="The user id of a phone number, created if none yet")
async def resolve_user(body: ResolveUser, service: AccountServiceDep) -> ResolvedUser:
    user = await service.resolve_user(body.phone)
    return ResolvedUser(user_id=user.id, masked_phone=user.masked_phone)
