from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from hc_common.deps import ServiceKeyDep, SessionDep
from hc_common.errors import NotFound
from hc_common.phone import Phone
from issuer.account.service import AccountService
from issuer.credential.models import Credential
from issuer.credential.service import credential_event

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[ServiceKeyDep])


@router.get("/credentials/{credential_id}", summary="What the verifier keeps of a credential")
async def credential(credential_id: str, session: SessionDep) -> dict[str, object]:
    row = await session.get(Credential, credential_id)
    if row is None:
        raise NotFound()
    return credential_event(row)


@router.get("/revocations", summary="Revoked credentials that have not expired (cold start)")
async def revocations(
    session: SessionDep, after: str | None = Query(None), limit: int = Query(5000, ge=1, le=50000)
) -> dict[str, object]:
    query = select(Credential.id).where(Credential.status == "revoked")
    if after:
        query = query.where(Credential.id > after)
    ids = list((await session.scalars(query.order_by(Credential.id).limit(limit))).all())
    return {"items": ids, "next_cursor": ids[-1] if len(ids) == limit else None}


class ResolveUser(BaseModel):
    phone: Phone


@router.post("/users/resolve", summary="The user id of a phone number, created if none yet")
async def resolve_user(body: ResolveUser, session: SessionDep, request: Request) -> dict[str, str]:
    state = request.app.state
    service = AccountService(session, state.otp, state.ring, 0)
    user = await service.resolve_user(body.phone)
    return {"user_id": user.id, "masked_phone": user.masked_phone}
