"""The rules of appeals: a user files them, about one of their own credentials or none."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.errors import NotFound
from hc_common.ids import new_id
from issuer.appeal.models import Appeal
from issuer.appeal.repository import AppealRepository
from issuer.appeal.schemas import AppealCreate, AppealStatus
from issuer.credential.repository import CredentialRepository


@dataclass
class AppealService:
    session: AsyncSession

    @property
    def repo(self) -> AppealRepository:
        return AppealRepository(self.session)

    async def file(self, user_id: str, body: AppealCreate) -> Appeal:
        if body.credential_id is not None:
            credential = await CredentialRepository(self.session).get(body.credential_id)
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
        self.repo.add(appeal)
        await self.session.flush()
        return appeal

    async def list(
        self, user_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Appeal], str | None]:
        rows = await self.repo.list_for_user(user_id, limit + 1, cursor)
        next_cursor = rows[limit - 1].id if len(rows) > limit else None
        return rows[:limit], next_cursor
