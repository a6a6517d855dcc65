"""Every query on credentials; never commits."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from issuer.credential.models import Credential


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, credential: Credential) -> None:
        self.session.add(credential)

    async def get(self, credential_id: str) -> Credential | None:
        return await self.session.get(Credential, credential_id)

    async def active_for_person(self, person_key: str) -> Credential | None:
        return await self.session.scalar(
            select(Credential).where(
                Credential.person_key == person_key, Credential.status == "active"
            )
        )

    async def latest_version(self, person_key: str) -> int:
        """The highest version any credential of this person had; 0 for none."""
        latest = await self.session.scalar(
            select(func.max(Credential.version)).where(Credential.person_key == person_key)
        )
        return latest or 0

    async def list_for_user(
        self, user_id: str, limit: int, before: str | None
    ) -> Sequence[Credential]:
        """Newest first (ids are time-ordered); `before` is the last id of the previous page."""
        query = select(Credential).where(Credential.user_id == user_id)
        if before:
            query = query.where(Credential.id < before)
        return (await self.session.scalars(query.order_by(Credential.id.desc()).limit(limit))).all()

    async def revoked_ids(self, limit: int, after: str | None) -> Sequence[str]:
        """Ids of revoked credentials, expired ones included, in id order from `after`."""
        query = select(Credential.id).where(Credential.status == "revoked")
        if after:
            query = query.where(Credential.id > after)
        return (await self.session.scalars(query.order_by(Credential.id).limit(limit))).all()
