from enum import StrEnum

from pydantic import BaseModel, Field

from hc_common.hygiene import EntityId, FreeText
from hc_common.schemas import Timestamp


class AppealCategory(StrEnum):
    cannot_apply = "cannot_apply"
    wrong_status = "wrong_status"
    lost_card = "lost_card"
    other = "other"


class AppealStatus(StrEnum):
    open = "open"
    in_review = "in_review"
    resolved = "resolved"
    rejected = "rejected"


# What a reviewer may set: an appeal never goes back to `open`.
class ReviewStatus(StrEnum):
    in_review = "in_review"
    resolved = "resolved"
    rejected = "rejected"


CLOSED = frozenset({AppealStatus.resolved, AppealStatus.rejected})


class AppealCreate(BaseModel):
    category: AppealCategory
    description: FreeText = Field(
        min_length=1,
        max_length=2000,
        description="Tab and line breaks allowed, no other control character (else 422)",
    )
    credential_id: EntityId | None = Field(
        None, description="One of the caller's own credentials; else 404"
    )


class AppealOut(BaseModel):
    appeal_id: str
    category: AppealCategory
    description: str
    credential_id: str | None
    status: AppealStatus
    reply: str | None = Field(description="The staff's answer; null until they give one")
    created_at: Timestamp
    updated_at: Timestamp


class AppealList(BaseModel):
    items: list[AppealOut]
    next_cursor: str | None = None


class ReviewCredential(BaseModel):
    credential_id: str
    masked_name: str
    masked_id_number: str
    status: str = Field(description="active | revoked | expired, as of now")


class ReviewAppeal(BaseModel):
    appeal_id: str
    status: AppealStatus
    category: AppealCategory
    description: str
    created_at: Timestamp
    updated_at: Timestamp
    masked_phone: str = Field(description="The applicant's phone number, masked: 138****8000")
    credential: ReviewCredential | None = Field(
        description="The credential the appeal is about; null when it names none"
    )
    reply: str | None


class ReviewAppealList(BaseModel):
    items: list[ReviewAppeal]
    next_cursor: str | None = None


class ReviewDecision(BaseModel):
    status: ReviewStatus
    reply: FreeText | None = Field(
        None,
        max_length=2000,
        description="The answer the applicant reads (tab and line breaks allowed, 1-2000 "
        "characters). Required to close (`resolved`, `rejected`): else 422 `reply_required`. "
        "With `in_review` it is optional: given, it replaces the reply shown so far.",
    )
