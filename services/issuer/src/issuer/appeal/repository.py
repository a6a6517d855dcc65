"""Every query on appeals; never commits."""

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, Select, and_, case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from issuer.account.models import User
from issuer.appeal.models import Appeal
from issuer.appeal.schemas import AppealStatus
from issuer.credential.models import Credential

# The review queue's order: open, then in review, then closed; within each, oldest first.
STATUS_RANK = {AppealStatus.open: 0, AppealStatus.in_review: 1}
CLOSED_RANK = 2


def status_rank() -> ColumnElement[int]:
    return case(
        *((Appeal.status == status.value, rank) for status, rank in STATUS_RANK.items()),
        else_=literal(CLOSED_RANK, Integer),
    )


# An appeal in the queue with what the reviewer sees of its applicant and credential.
ReviewRow = tuple[Appeal, str | None, Credential | None]


class AppealRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, appeal: Appeal) -> None:
        self.session.add(appeal)

    async def list_for_user(self, user_id: str, limit: int, before: str | None) -> Sequence[Appeal]:
        """Newest first (ids are time-ordered); `before` is the last id of the previous page."""
        query = select(Appeal).where(Appeal.user_id == user_id)
        if before:
            query = query.where(Appeal.id < before)
        return (await self.session.scalars(query.order_by(Appeal.id.desc()).limit(limit))).all()

    def _review_query(self) -> Select[Appeal, str, Credential]:
        return (
            select(Appeal, User.masked_phone, Credential)
            .outerjoin(User, User.id == Appeal.user_id)
            .outerjoin(Credential, Credential.id == Appeal.credential_id)
            # The photo and the QR text are not the reviewer's and are large.
            .options(defer(Credential.photo, raiseload=True), defer(Credential.qr, raiseload=True))
        )

    async def review_page(
        self,
        statuses: Iterable[str] | None,
        category: str | None,
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[ReviewRow]:
        """The queue in (status rank, id) order; `after` is the (rank, id) of the previous
        page's last row."""
        rank = status_rank()
        query = self._review_query()
        if statuses is not None:
            query = query.where(Appeal.status.in_(list(statuses)))
        if category is not None:
            query = query.where(Appeal.category == category)
        if after is not None:
            after_rank, after_id = after
            query = query.where(
                or_(rank > after_rank, and_(rank == after_rank, Appeal.id > after_id))
            )
        result = await self.session.execute(query.order_by(rank, Appeal.id).limit(limit))
        return [(row[0], row[1], row[2]) for row in result.all()]

    async def review_row(self, appeal_id: str) -> ReviewRow | None:
        result = await self.session.execute(
            self._review_query()
            .where(Appeal.id == appeal_id)
            # Read as the database has it now (after `move`), not as this session last saw it.
            .execution_options(populate_existing=True)
        )
        row = result.first()
        return None if row is None else (row[0], row[1], row[2])

    async def move(
        self,
        appeal_id: str,
        to: str,
        allowed_from: Iterable[str],
        reply: str | None,
        now: datetime,
    ) -> bool:
        """Moves the appeal to `to` if its status is one of `allowed_from`, in one conditional
        UPDATE: of concurrent moves out of the same state, on any replica, the database lets
        one through (on PostgreSQL the others wait for its row lock and then find the new
        status; on SQLite writers take turns). True when this one moved it. A `reply` of None
        keeps the reply there was."""
        values: dict[str, object] = {"status": to, "updated_at": now}
        if reply is not None:
            values["reply"] = reply
        moved = await self.session.scalar(
            update(Appeal)
            .where(Appeal.id == appeal_id, Appeal.status.in_(list(allowed_from)))
            .values(**values)
            .returning(Appeal.id)
            .execution_options(synchronize_session=False)
        )
        return moved is not None

    async def phone_sealed_of(self, user_id: str) -> bytes | None:
        sealed: bytes | None = await self.session.scalar(
            select(User.phone_sealed).where(User.id == user_id)
        )
        return sealed
