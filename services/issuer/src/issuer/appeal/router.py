"""Appeals: file one, list one's own."""

from typing import Annotated

from fastapi import APIRouter, Query

from hc_common.hygiene import EntityId
from issuer.appeal.models import Appeal
from issuer.appeal.schemas import AppealCategory, AppealCreate, AppealList, AppealOut, AppealStatus
from issuer.deps import AppealServiceDep, CurrentUser

router = APIRouter(prefix="/v1/appeals", tags=["appeals"])


def appeal_out(appeal: Appeal) -> AppealOut:
    return AppealOut(
        appeal_id=appeal.id,
        category=AppealCategory(appeal.category),
        description=appeal.description,
        credential_id=appeal.credential_id,
        status=AppealStatus(appeal.status),
        created_at=appeal.created_at,
        updated_at=appeal.updated_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=AppealOut,
    summary="File an appeal",
    description="`category`: cannot_apply | wrong_status | lost_card | other; "
    "`description` 1-2000 characters (tab and line breaks allowed, no other control "
    "character: 422 `invalid_text`). `credential_id`, when given, must be "
    "one of the caller's own credentials (else 404 `not_found`). A new "
    "appeal is `open`; staff move it to `in_progress`, `resolved` or "
    "`rejected`.",
)
async def file_appeal(
    body: AppealCreate, user_id: CurrentUser, service: AppealServiceDep
) -> AppealOut:
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
    service: AppealServiceDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: Annotated[
        EntityId | None, Query(description="`next_cursor` of the previous page")
    ] = None,
) -> AppealList:
    page = await service.list_for_user(user_id, limit, cursor)
    return AppealList(items=[appeal_out(a) for a in page.items], next_cursor=page.next_cursor)
