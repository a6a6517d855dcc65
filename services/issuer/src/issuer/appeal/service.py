"""The rules of appeals: a user files them, about one of their own credentials or none; the
health authority's staff review them (open → in_review → resolved | rejected) and the
applicant is texted the outcome."""

import base64
import binascii
import logging
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import CST, utcnow
from hc_common.crypto import Sealer
from hc_common.errors import (
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    register_messages,
)
from hc_common.hygiene import is_id
from hc_common.i18n import APPEAL_STATUSES, words
from hc_common.ids import new_id
from hc_common.otp import SmsNoticeSender
from hc_common.pagination import Page, page_of
from issuer.appeal.models import Appeal
from issuer.appeal.repository import CLOSED_RANK, STATUS_RANK, AppealRepository, ReviewRow
from issuer.appeal.schemas import CLOSED, AppealCreate, AppealStatus, ReviewDecision
from issuer.credential.repository import CredentialRepository

log = logging.getLogger(__name__)

register_messages(
    {
        "appeal_closed": ("申诉已办结，不能再更改", "The appeal is closed and cannot change"),
        "reply_required": ("办结申诉须填写答复", "A reply is required to close an appeal"),
    }
)

# The SMS gateway's template of the outcome notice (params: `filed_on`, `outcome`).
NOTICE_TEMPLATE = "HC_APPEAL_CLOSED"

# Where each status a reviewer sets may come from. `in_review` → `in_review` is allowed: the
# reviewer updates the reply shown to the applicant while still working on it.
ALLOWED_FROM: dict[AppealStatus, tuple[AppealStatus, ...]] = {
    AppealStatus.in_review: (AppealStatus.open, AppealStatus.in_review),
    AppealStatus.resolved: (AppealStatus.open, AppealStatus.in_review),
    AppealStatus.rejected: (AppealStatus.open, AppealStatus.in_review),
}


def encode_cursor(rank: int, appeal_id: str) -> str:
    return base64.urlsafe_b64encode(f"{rank}:{appeal_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (status rank, id) of a page's last row; 422 `invalid_cursor` for anything this
    service did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        rank, appeal_id = raw.split(":", 1)
        if rank not in {"0", "1", "2"} or not is_id(appeal_id):
            raise ValueError("not a cursor of ours")
        return int(rank), appeal_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Unprocessable(
            "invalid_cursor",
            detail="分页游标无效",
            detail_en="Invalid cursor",
            extra={
                "errors": [
                    {"field": "cursor", "code": "invalid_cursor", "message": "Invalid cursor"}
                ]
            },
        ) from None


def rank_of(status: str) -> int:
    return STATUS_RANK.get(AppealStatus(status), CLOSED_RANK)


def notice_text(appeal: Appeal, outcome: str) -> tuple[str, dict[str, str]]:
    """The outcome SMS in words (Chinese: the applicant's language is not known), and the
    gateway template's params. The reply itself is read in the app, not texted."""
    filed = appeal.created_at.astimezone(CST)
    filed_on = f"{filed.month}月{filed.day}日"
    outcome_words = words(APPEAL_STATUSES, outcome, english=False)
    text = (
        f"您于{filed_on}提交的申诉已办结，结果：{outcome_words}。答复请在小程序“我的申诉”中查看。"
    )
    return text, {"filed_on": filed_on, "outcome": outcome_words}


@dataclass
class AppealService:
    session: AsyncSession
    # Who texts the outcome, and the key of the users' sealed numbers (review only).
    sender: SmsNoticeSender
    phone_sealer: Sealer
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
            reply=None,
            created_at=now,
            updated_at=now,
        )
        self._appeals.add(appeal)
        return appeal

    async def list_for_user(self, user_id: str, limit: int, cursor: str | None) -> Page[Appeal]:
        """The user's appeals, newest first."""
        rows = await self._appeals.list_for_user(user_id, limit + 1, cursor)
        return page_of(rows, limit, lambda appeal: appeal.id)

    async def review_page(
        self,
        status: AppealStatus | None,
        category: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[ReviewRow]:
        """The review queue: open first, then in review, then closed; oldest first within
        each (ids follow filing time)."""
        after = decode_cursor(cursor) if cursor else None
        statuses = None if status is None else [status.value]
        rows = await self._appeals.review_page(statuses, category, limit + 1, after)
        return page_of(rows, limit, lambda row: encode_cursor(rank_of(row[0].status), row[0].id))

    async def review(self, appeal_id: str, decision: ReviewDecision) -> ReviewRow:
        """Moves the appeal as the reviewer decides, by one conditional UPDATE (a closed
        appeal stays closed: 409 `appeal_closed` to every later or concurrent attempt), and
        texts the applicant the outcome when it closes, in the same transaction."""
        to = AppealStatus(decision.status.value)
        reply = (decision.reply or "").strip() or None
        if to in CLOSED and reply is None:
            raise Unprocessable(
                "reply_required",
                extra={
                    "errors": [
                        {
                            "field": "reply",
                            "code": "reply_required",
                            "message": "A reply is required to close an appeal",
                        }
                    ]
                },
            )
        allowed = [status.value for status in ALLOWED_FROM[to]]
        if not await self._appeals.move(appeal_id, to.value, allowed, reply, utcnow()):
            if await self._appeals.review_row(appeal_id) is None:
                raise NotFound(detail="申诉不存在", detail_en="No such appeal")
            raise Conflict("appeal_closed")
        row = await self._appeals.review_row(appeal_id)
        assert row is not None  # moved above, in this transaction
        if to in CLOSED:
            await self._notify(row[0], to.value)
        return row

    async def _notify(self, appeal: Appeal, outcome: str) -> None:
        """Texts the applicant the outcome. Only the request whose UPDATE closed the appeal
        gets here, so it is sent once; the dev outbox row is written in the close's
        transaction; a gateway that fails rolls the close back (503), to be retried."""
        sealed = await self._appeals.phone_sealed_of(appeal.user_id)
        if sealed is None:
            # A user not signed in since numbers were kept: the reply is in the app only.
            log.warning("appeal outcome not texted: no number kept", extra={"appeal_id": appeal.id})
            return
        phone = self.phone_sealer.open(sealed).decode()
        text, params = notice_text(appeal, outcome)
        try:
            await self.sender.send_notice(self.session, phone, text, NOTICE_TEMPLATE, params)
        except httpx.HTTPError:
            raise ServiceUnavailable(
                detail="短信服务暂不可用，请稍后再试",
                detail_en="The SMS gateway is unavailable; try again later",
            ) from None
