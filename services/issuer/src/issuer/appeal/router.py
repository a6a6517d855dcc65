"""Appeals: file one, list one's own; and the health authority's review of them."""

from typing import Annotated

from fastapi import APIRouter, Query

from hc_common.app import problem_responses
from hc_common.hygiene import EntityId, require_id
from issuer.appeal.models import Appeal
from issuer.appeal.repository import ReviewRow
from issuer.appeal.schemas import (
    AppealCategory,
    AppealCreate,
    AppealList,
    AppealOut,
    AppealStatus,
    ReviewAppeal,
    ReviewAppealList,
    ReviewCredential,
    ReviewDecision,
)
from issuer.credential.service import credential_status
from issuer.deps import AppealServiceDep, AuthorityDep, CurrentUser

user_router = APIRouter(prefix="/v1/appeals", tags=["appeals"])
review_router = APIRouter(
    prefix="/v1/review/appeals", tags=["appeal review"], dependencies=[AuthorityDep]
)
# Both, as the app includes them.
router = APIRouter()


def appeal_out(appeal: Appeal) -> AppealOut:
    return AppealOut(
        appeal_id=appeal.id,
        category=AppealCategory(appeal.category),
        description=appeal.description,
        credential_id=appeal.credential_id,
        status=AppealStatus(appeal.status),
        reply=appeal.reply,
        created_at=appeal.created_at,
        updated_at=appeal.updated_at,
    )


def review_out(row: ReviewRow) -> ReviewAppeal:
    appeal, masked_phone, credential = row
    return ReviewAppeal(
        appeal_id=appeal.id,
        status=AppealStatus(appeal.status),
        category=AppealCategory(appeal.category),
        description=appeal.description,
        created_at=appeal.created_at,
        updated_at=appeal.updated_at,
        masked_phone=masked_phone or "",
        credential=None
        if credential is None
        else ReviewCredential(
            credential_id=credential.id,
            masked_name=credential.masked_name,
            masked_id_number=credential.masked_id_number,
            status=credential_status(credential),
        ),
        reply=appeal.reply,
    )


STATES = """States: `open` (new) → `in_review` → `resolved` | `rejected`; `open` may go straight
to `resolved` or `rejected`. `resolved` and `rejected` are closed: the appeal does not change
again."""


@user_router.post(
    "",
    status_code=201,
    response_model=AppealOut,
    summary="File an appeal",
    description="`category`: cannot_apply | wrong_status | lost_card | other; "
    "`description` 1-2000 characters (tab and line breaks allowed, no other control "
    "character: 422 `invalid_text`). `credential_id`, when given, must be "
    "one of the caller's own credentials (else 404 `not_found`). A new "
    "appeal is `open`; the health authority's staff move it to `in_review`, `resolved` or "
    "`rejected`, and the applicant is texted the outcome when it closes.",
)
async def file_appeal(
    body: AppealCreate, user_id: CurrentUser, service: AppealServiceDep
) -> AppealOut:
    return appeal_out(await service.file(user_id, body))


@user_router.get(
    "",
    response_model=AppealList,
    summary="The signed-in user's appeals",
    description="Newest first, with their status (open | in_review | resolved | rejected) "
    "and the staff's `reply` (null until they give one). Paginated with `limit` (1-500, "
    "default 50) and `cursor`.",
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


@review_router.get(
    "",
    response_model=ReviewAppealList,
    responses=problem_responses(401, 422),
    summary="The appeal review queue (health authority staff)",
    description=STATES
    + """

Order: `open` appeals first, then `in_review`, then closed ones; within each, oldest filed
first (so with `?status=...` simply oldest first). Filters: `status`, `category` (each one
value). Paginated with `limit` (1-500, default 50) and the opaque `cursor` (the previous
page's `next_cursor`; anything else is 422 `invalid_cursor`). An appeal whose status changes
between two pages may be shown twice or not at all in that walk.

The applicant appears only as a masked phone number; the credential the appeal names (if
any) with its masked name, masked ID number and its status now (active | revoked | expired).
Authorization: the authority key (`AuthorityKey`); none or another is 401 `unauthorized`.""",
)
async def review_queue(
    service: AppealServiceDep,
    status: Annotated[AppealStatus | None, Query(description="Only appeals in this status")] = None,
    category: Annotated[
        AppealCategory | None, Query(description="Only appeals of this category")
    ] = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> ReviewAppealList:
    page = await service.review_page(
        status, None if category is None else category.value, limit, cursor
    )
    return ReviewAppealList(
        items=[review_out(row) for row in page.items], next_cursor=page.next_cursor
    )


@review_router.post(
    "/{appeal_id}",
    response_model=ReviewAppeal,
    responses=problem_responses(401, 404, 409, 422, 503),
    summary="Review an appeal: take it up, resolve or reject it (health authority staff)",
    description=STATES
    + """

Body `{"status": "in_review" | "resolved" | "rejected", "reply": "..."}` → 200 the appeal as
the queue shows it.

- `reply` (1-2000 characters, tab and line breaks allowed) is what the applicant reads in
  `GET /v1/appeals`. It is required to close: `resolved` or `rejected` without a reply (or
  with only blanks) is 422 `reply_required`. With `in_review` it is optional; given, it
  replaces the reply shown so far.
- `in_review` on an appeal already in review is allowed (200): the reviewer updates the reply
  the applicant sees; without a reply nothing but `updated_at` changes. An appeal never goes
  back to `open` (`"status": "open"` is 422).
- A closed appeal (`resolved`, `rejected`) cannot change: 409 `appeal_closed`, also for a
  repeat of the same decision. Of reviewers closing the same appeal at once, on any replica,
  exactly one succeeds; the others get 409 `appeal_closed`.
- Closing texts the applicant the outcome, once, in the same transaction as the close (the
  reply itself is read in the app). When the SMS gateway fails the appeal stays as it was
  and the answer is 503 `service_unavailable` (try again). A user who has not signed in since
  numbers were kept for this is not texted.
- An unknown appeal id, or one not of the system's format, is 404 `not_found`.
Authorization: the authority key (`AuthorityKey`); none or another is 401 `unauthorized`.""",
)
async def review_appeal(
    appeal_id: str, body: ReviewDecision, service: AppealServiceDep
) -> ReviewAppeal:
    return review_out(await service.review(require_id(appeal_id), body))


router.include_router(user_router)
router.include_router(review_router)
