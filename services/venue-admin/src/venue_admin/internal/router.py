from fastapi import APIRouter, Query
from sqlalchemy import select

from hc_common.deps import ServiceKeyDep, SessionDep
from hc_common.errors import NotFound
from venue_admin.device.repository import DeviceRepository
from venue_admin.device.service import device_event
from venue_admin.venue.models import Member, Venue, VenueRule
from venue_admin.venue.repository import VenueRepository
from venue_admin.venue.service import member_event, rule_event

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[ServiceKeyDep])


@router.get(
    "/venues/{venue_id}/scan-context",
    summary="What the verifier needs to check a scanner at a venue, and the rule",
    description="`member` (member-event shape) when `user_id` is given and is a member, "
    "`device` (device-event shape, `active` false once deleted) when "
    "`device_id` is given and belongs to this venue; else null.",
)
async def scan_context(
    venue_id: str,
    session: SessionDep,
    user_id: str | None = Query(None),
    device_id: str | None = Query(None),
) -> dict[str, object]:
    repo = VenueRepository(session)
    if await repo.venue(venue_id) is None:
        raise NotFound()
    member = await repo.member(venue_id, user_id) if user_id else None
    device = await DeviceRepository(session).get(device_id) if device_id else None
    if device is not None and device.venue_id != venue_id:
        device = None
    return {
        "venue_id": venue_id,
        "member": member_event(member) if member else None,
        "device": device_event(device) if device else None,
        "rule": rule_event(venue_id, await repo.rule(venue_id)),
    }


@router.get(
    "/scan-snapshot",
    summary="Every member, device and rule, for a verifier starting cold",
    description="Paginated by venue: each page covers up to `limit` venues (by id) and "
    "holds all their members (member-event shape), devices (device-event "
    "shape, deleted ones with `active` false) and rules (rule-event shape; "
    "the default rule with version 0 where none was set). Pass "
    "`next_cursor` back as `cursor` until it is null. Events published "
    "while paging carry versions, so the newest version wins.",
)
async def scan_snapshot(
    session: SessionDep, limit: int = Query(500, ge=1, le=5000), cursor: str | None = Query(None)
) -> dict[str, object]:
    query = select(Venue.id).order_by(Venue.id).limit(limit + 1)
    if cursor:
        query = query.where(Venue.id > cursor)
    venue_ids = list((await session.scalars(query)).all())
    next_cursor = venue_ids[limit - 1] if len(venue_ids) > limit else None
    venue_ids = venue_ids[:limit]
    members, rules = [], {}
    if venue_ids:
        members = list(
            (
                await session.scalars(
                    select(Member)
                    .where(Member.venue_id.in_(venue_ids))
                    .order_by(Member.venue_id, Member.user_id)
                )
            ).all()
        )
        rules = {
            r.venue_id: r
            for r in (
                await session.scalars(select(VenueRule).where(VenueRule.venue_id.in_(venue_ids)))
            ).all()
        }
    devices = await DeviceRepository(session).of_venues(venue_ids)
    return {
        "members": [member_event(m) for m in members],
        "devices": [device_event(d) for d in devices],
        "rules": [rule_event(v, rules.get(v)) for v in venue_ids],
        "next_cursor": next_cursor,
    }
