"""The rules of venues: the creator is main admin, only the main admin manages, sub-admins
join by a code sent to their phone, every change is an event for the verifier."""

import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.errors import Forbidden, NotFound, Unprocessable
from hc_common.events.schemas import RuleChanged
from hc_common.hygiene import is_id, require_id
from hc_common.ids import new_id
from hc_common.otp import OtpCodes
from hc_common.pagination import Page, page_of
from venue_admin.clients.issuer import IssuerClient
from venue_admin.venue import events
from venue_admin.venue.models import Member, Venue
from venue_admin.venue.repository import VenueRepository
from venue_admin.venue.schemas import RuleIn, VenueCreate

MAIN_ADMIN = "main_admin"
SUB_ADMIN = "sub_admin"
ALL_PERMISSIONS = ["reverse_scan"]


def next_member_version(previous: int = 0) -> int:
    """The version of a member's next event: one more than the last, and at least the time in
    microseconds. The verifier keeps the highest version it has seen of a (venue, user),
    removals included, while the removed row is gone here: a member added back must come
    with a version above the removal's, which the clock gives (a removal and the re-adding
    are seconds apart at least: a new SMS code is needed)."""
    return max(previous + 1, time.time_ns() // 1000)


def id_cursor(cursor: str | None) -> str | None:
    """A cursor of a list paged by id (the last id of the previous page), or 422
    `invalid_cursor` for anything that is not an id of ours; empty is no cursor."""
    if not cursor:
        return None
    if not is_id(cursor):
        raise Unprocessable("invalid_cursor", detail="分页游标无效", detail_en="Invalid cursor")
    return cursor


@dataclass
class VenueService:
    session: AsyncSession
    otp: OtpCodes
    issuer: IssuerClient
    repo: VenueRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = VenueRepository(self.session)

    async def create(self, user_id: str, masked_phone: str, body: VenueCreate) -> Venue:
        now = utcnow()
        venue = Venue(
            id=new_id(),
            name=body.name,
            category=body.category.value,
            address=body.address,
            region_code=body.region_code,
            created_by=user_id,
            created_at=now,
        )
        self.repo.add(venue)
        await self.session.flush()
        admin = Member(
            venue_id=venue.id,
            user_id=user_id,
            masked_phone=masked_phone,
            role=MAIN_ADMIN,
            permissions=list(ALL_PERMISSIONS),
            added_at=now,
            version=next_member_version(),
        )
        self.repo.add(admin)
        events.venue_created(self.session, venue)
        events.member_changed(self.session, admin)
        await self.session.flush()
        return venue

    async def venues_of(
        self, user_id: str, limit: int, cursor: str | None
    ) -> Page[tuple[Venue, str]]:
        """The user's venues (newest first) with the user's role at each."""
        rows = await self.repo.venues_of(user_id, limit + 1, id_cursor(cursor))
        return page_of(rows, limit, lambda row: row[0].id)

    async def venue_for_member(self, venue_id: str, user_id: str) -> tuple[Venue, Member]:
        """The venue if the user is a member of it; 404 if it does not exist (or the id is not
        of our format), 403 if not a member."""
        require_id(venue_id)
        venue = await self.repo.venue(venue_id)
        if venue is None:
            raise NotFound(detail="场所不存在", detail_en="No such venue")
        member = await self.repo.member(venue_id, user_id)
        if member is None:
            raise Forbidden(detail="您不是该场所的管理员", detail_en="Not a member of this venue")
        return venue, member

    async def require_main_admin(self, venue_id: str, user_id: str) -> Venue:
        venue, member = await self.venue_for_member(venue_id, user_id)
        if member.role != MAIN_ADMIN:
            raise Forbidden(
                detail="仅主管理员可执行此操作", detail_en="Only the main admin may do this"
            )
        return venue

    async def members(
        self, user_id: str, venue_id: str, limit: int, cursor: str | None
    ) -> Page[Member]:
        """The venue's members by user id (members only)."""
        await self.venue_for_member(venue_id, user_id)
        rows = await self.repo.members(venue_id, limit + 1, id_cursor(cursor))
        return page_of(rows, limit, lambda member: member.user_id)

    @staticmethod
    def code_scope(venue_id: str) -> str:
        return "sub-admin:" + venue_id

    async def send_sub_admin_code(self, user_id: str, venue_id: str, phone: str) -> int:
        await self.require_main_admin(venue_id, user_id)
        return await self.otp.send(self.session, phone, self.code_scope(venue_id))

    async def add_sub_admin(self, user_id: str, venue_id: str, phone: str, code: str) -> Member:
        await self.require_main_admin(venue_id, user_id)
        # A wrong code is committed there before it raises, so the try budget holds.
        await self.otp.check(self.session, phone, self.code_scope(venue_id), code)
        new_user_id, masked_phone = await self.issuer.resolve_user(phone)
        added = await self.repo.add_member_if_absent(
            Member(
                venue_id=venue_id,
                user_id=new_user_id,
                masked_phone=masked_phone,
                role=SUB_ADMIN,
                permissions=list(ALL_PERMISSIONS),
                added_at=utcnow(),
                version=next_member_version(),
            )
        )
        if added is not None:
            events.member_changed(self.session, added)
            return added
        # A member already (added before, or by a request racing this one): as it is.
        member = await self.repo.member(venue_id, new_user_id)
        if member is None:  # removed again in between
            raise NotFound(detail="成员不存在", detail_en="No such member")
        return member

    async def _member_to_manage(
        self, user_id: str, venue_id: str, member_id: str, main_admin_refusal: Unprocessable
    ) -> Member:
        """The member the main admin (`user_id`) acts on: 404 if there is none, and
        `main_admin_refusal` for the main admin, whose membership and permissions are fixed."""
        await self.require_main_admin(venue_id, user_id)
        require_id(member_id)
        member = await self.repo.member(venue_id, member_id)
        if member is None:
            raise NotFound(detail="成员不存在", detail_en="No such member")
        if member.role == MAIN_ADMIN:
            raise main_admin_refusal
        return member

    async def remove_member(self, user_id: str, venue_id: str, member_id: str) -> None:
        """Remove a sub-admin (main admin only); of requests removing one member at once, one
        does it and the others find no member (404)."""
        member = await self._member_to_manage(
            user_id,
            venue_id,
            member_id,
            Unprocessable(
                "cannot_remove_main_admin",
                detail="不能移除主管理员",
                detail_en="The main admin cannot be removed",
            ),
        )
        version = await self.repo.remove_member(venue_id, member.user_id, SUB_ADMIN)
        if version is None:
            raise NotFound(detail="成员不存在", detail_en="No such member")
        events.member_changed(
            self.session, member, removed=True, version=next_member_version(version)
        )

    async def set_permissions(
        self, user_id: str, venue_id: str, member_id: str, permissions: list[str]
    ) -> Member:
        member = await self._member_to_manage(
            user_id,
            venue_id,
            member_id,
            Unprocessable(
                "cannot_change_main_admin",
                detail="主管理员拥有全部权限，不能修改",
                detail_en="The main admin holds every permission",
            ),
        )
        updated = await self.repo.set_member_permissions(
            venue_id, member.user_id, SUB_ADMIN, sorted(set(permissions)), next_member_version()
        )
        if updated is None:  # removed by a request racing this one
            raise NotFound(detail="成员不存在", detail_en="No such member")
        events.member_changed(self.session, updated)
        return updated

    async def rule(self, user_id: str, venue_id: str) -> RuleChanged:
        """The venue's entry rule (members only); the default one where none was set."""
        await self.venue_for_member(venue_id, user_id)
        return events.rule_payload(venue_id, await self.repo.rule(venue_id))

    async def set_rule(self, user_id: str, venue_id: str, body: RuleIn) -> RuleChanged:
        """Replace the venue's rule as a whole (main admin only); each change a new version,
        however many arrive at once."""
        await self.require_main_admin(venue_id, user_id)
        rule = await self.repo.replace_rule(
            venue_id,
            [color.value for color in body.allowed_colors],
            body.max_nat_age_hours,
            body.min_vaccine_doses,
            utcnow(),
        )
        return events.rule_changed(self.session, rule)
