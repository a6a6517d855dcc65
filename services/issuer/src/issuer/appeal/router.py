from typing import Annotated

from fastapi import APIRouter, Depends, Query

from hc_common.deps import SessionDep
from issuer.appeal.models import Appeal
from issuer.appeal.schemas import AppealCreate, AppealList, AppealOut
from issuer.appeal.service import AppealService
from issuer.deps import CurrentUser

router = APIRouter(prefix="/v1/appeals", tags=["appeals"])


async def _service(session: SessionDep) -> AppealService:
    return AppealService(session)


ServiceDep = Annotated[AppealService, Depends(_service)]


def appeal_out(appeal: Appeal) -> AppealOut:
    return AppealOut(
        appeal_id=appeal.id,
        category=appeal.category,  # type: ignore[arg-type]
        description=appeal.description,
        credential_id=appeal.credential_id,
        status=appeal.status,  # type: ignore[arg-type]
        created_at=appeal.created_at,
        updated_at=appeal.updated_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=AppealOut,
    summary="File an appeal",
    description="`category`: cannot_apply | wrong_status | lost_card | other; "
    "`description` 1-2000 characters. `credential_id`, when given, must be "
    "one of the caller's own credentials (else 404 `not_found`). A new "
    "appeal is `open`; staff move it to `in_progress`, `resolved` or "
    "`rejected`.",
)
async def file_appeal(body: AppealCreate, user_id: CurrentUser, service: ServiceDep) -> AppealOut:
    return appeal_out(await service.file(user_id, body))


@router.get(
    "",
    response_model=AppealList,
    summary="The signed-in user's appeals",
    description="Newest first, with their status: open | in_progress | resolved | "
    "rejected. Paginated with `limit` (1-500, default 50) and `cursor`.",
)
async def list_appeals(
    user_id: CurrentUser,
    service: ServiceDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=26),
) -> AppealList:
    rows, next_cursor = await service.list(user_id, limit, cursor)
    return AppealList(items=[appeal_out(a) for a in rows], next_cursor=next_cursor)
