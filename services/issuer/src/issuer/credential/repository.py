"""Every query on credentials; never commits."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from issuer.credential.models import Credential


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, credential_id: str) -> Credential | None:
        return await self.session.get(Credential, credential_id)

    async def active_for_person(self, person_key: str) -> Credential | None:
        return await self.session.scalar(
            select(Credential).where(
                Credential.person_key == person_key, Credential.status == "active"
            )
        )

    async def list_for_user(self, user_id: str, limit: int, after: str | None) -> list[Credential]:
        query = select(Credential).where(Credential.user_id == user_id)
        if after:
            query = query.where(Credential.id < after)
        return list(
            (await self.session.scalars(query.order_by(Credential.id.desc()).limit(limit))).all()
        )

    async def latest_version(self, person_key: str) -> int:
        rows = await self.session.scalars(
            select(Credential.version).where(Credential.person_key == person_key)
        )
        return max(rows.all(), default=0)

    def add(self, credential: Credential) -> None:
        self.session.add(credential)
