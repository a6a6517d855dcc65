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
    in_progress = "in_progress"
    resolved = "resolved"
    rejected = "rejected"


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
    created_at: Timestamp
    updated_at: Timestamp


class AppealList(BaseModel):
    items: list[AppealOut]
    next_cursor: str | None = None
