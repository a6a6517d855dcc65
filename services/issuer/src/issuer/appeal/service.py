"""The rules of appeals: a user files them, about one of their own credentials or none."""

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.errors import NotFound
from hc_common.ids import new_id
from hc_common.pagination import Page, page_of
from issuer.appeal.models import Appeal
from issuer.appeal.repository import AppealRepository
from issuer.appeal.schemas import AppealCreate, AppealStatus
from issuer.credential.repository import CredentialRepository


@dataclass
class AppealService:
    session: AsyncSession
    _appeals: AppealRepository = field(init=False)
    _credentials: CredentialRepository = field(init=False)

    def __post_init__(self) -> None:
        self._appeals = AppealRepository(self.session)
        self._credentials = CredentialRepository(self.session)

    async def file(self, user_id: str, body: AppealCreate) -> Appeal:
        if body.credential_id is not None:
            credential = await self._credentials.get(body.credential_id)
            if credential is None or credential.user_id != user_id:
                raise NotFound(detail="凭证不存在", detail_en="No such credential")
        now = utcnow()
        appeal = Appeal(
            id=new_id(),
            user_id=user_id,
            category=body.category.value,
            description=body.description.strip() or body.description,
            credential_id=body.credential_id,
            status=AppealStatus.open.value,
            created_at=now,
            updated_at=now,
        )
        self._appeals.add(appeal)
        return appeal

    async def list_for_user(self, user_id: str, limit: int, cursor: str | None) -> Page[Appeal]:
        """The user's appeals, newest first."""
        rows = await self._appeals.list_for_user(user_id, limit + 1, cursor)
        return page_of(rows, limit, lambda appeal: appeal.id)
