"""Every query on credentials; never commits."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from issuer.credential.models import Credential


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, credential: Credential) -> bool:
        """Flushed at once: False when the person holds an active credential already, one a
        concurrent application or reissue has just made included (the partial unique index
        on active credentials; PostgreSQL first waits for that transaction). After False the
        transaction can only be rolled back."""
        self.session.add(credential)
        try:
            await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def revoke_if_active(self, credential: Credential, now: datetime) -> bool:
        """Revokes the credential if it is still active, in one conditional update: True for
        exactly one of any number of concurrent callers (PostgreSQL makes the others wait for
        the first and then see it revoked). The object is updated in place."""
        revoked = await self.session.scalar(
            update(Credential)
            .where(Credential.id == credential.id, Credential.status == "active")
            .values(status="revoked", revoked_at=now)
            .returning(Credential.id)
            .execution_options(synchronize_session="fetch")
        )
        return revoked is not None

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
