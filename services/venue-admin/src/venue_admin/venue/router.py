"""Venues, members, sub-admins and the entry rule over HTTP (`/v1/venues`)."""

from fastapi import APIRouter, Query, Response

from hc_common.app import problem_responses
from venue_admin.deps import CurrentUser, VenueServiceDep
from venue_admin.venue.models import Member, Venue
from venue_admin.venue.schemas import (
    MemberList,
    MemberOut,
    PermissionsUpdate,
    RuleIn,
    RuleOut,
    SubAdminCodeRequest,
    SubAdminCreate,
    VenueCreate,
    VenueList,
    VenueOut,
)

router = APIRouter(prefix="/v1/venues", tags=["venues"])


def venue_out(venue: Venue, role: str | None = None) -> VenueOut:
    return VenueOut(
        venue_id=venue.id,
        name=venue.name,
        category=venue.category,
        address=venue.address,
        region_code=venue.region_code,
        created_at=venue.created_at,
        role=role,
    )


def member_out(member: Member) -> MemberOut:
    return MemberOut(
        user_id=member.user_id,
        masked_phone=member.masked_phone,
        role=member.role,
        permissions=member.permissions,
        added_at=member.added_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=VenueOut,
    summary="Register a venue; the caller becomes its main admin (主管理员)",
)
async def create_venue(body: VenueCreate, user: CurrentUser, service: VenueServiceDep) -> VenueOut:
    venue = await service.create(user.id, user.masked_phone, body)
    return venue_out(venue, "main_admin")


@router.get("", response_model=VenueList, summary="Venues where the caller is a member")
async def list_venues(
    user: CurrentUser,
    service: VenueServiceDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None),
) -> VenueList:
    page = await service.venues_of(user.id, limit, cursor)
    return VenueList(
        items=[venue_out(venue, role) for venue, role in page.items], next_cursor=page.next_cursor
    )


@router.get("/{venue_id}", response_model=VenueOut, summary="One venue (members only)")
async def get_venue(venue_id: str, user: CurrentUser, service: VenueServiceDep) -> VenueOut:
    venue, member = await service.venue_for_member(venue_id, user.id)
    return venue_out(venue, member.role)


@router.post(
    "/{venue_id}/sub-admins/code",
    status_code=202,
    responses=problem_responses(429),
    summary="Send a code to a future sub-admin's phone (main admin only)",
    description="At most one code a minute and 10 a day per number, else 429 "
    "`too_many_requests` with `Retry-After`.",
)
async def send_sub_admin_code(
    venue_id: str,
    body: SubAdminCodeRequest,
    user: CurrentUser,
    service: VenueServiceDep,
) -> dict[str, int]:
    expires_in = await service.send_sub_admin_code(user.id, venue_id, body.phone)
    return {"expires_in": expires_in}


@router.post(
    "/{venue_id}/sub-admins",
    status_code=201,
    response_model=MemberOut,
    responses=problem_responses(503),
    summary="Add a sub-admin (分管员) with the code sent to their phone",
    description="422 `invalid_code` for a wrong or expired code (5 tries). The new "
    "sub-admin holds `reverse_scan` and becomes a user if the number has "
    "none yet; one who is a member already is answered as they are. 503 "
    "when the issuer, which holds the accounts, cannot be reached.",
)
async def add_sub_admin(
    venue_id: str,
    body: SubAdminCreate,
    user: CurrentUser,
    service: VenueServiceDep,
) -> MemberOut:
    member = await service.add_sub_admin(user.id, venue_id, body.phone, body.code)
    return member_out(member)


@router.get("/{venue_id}/members", response_model=MemberList, summary="Members (members only)")
async def list_members(
    venue_id: str,
    user: CurrentUser,
    service: VenueServiceDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None),
) -> MemberList:
    page = await service.members(user.id, venue_id, limit, cursor)
    return MemberList(items=[member_out(m) for m in page.items], next_cursor=page.next_cursor)


@router.delete(
    "/{venue_id}/members/{member_id}", status_code=204, summary="Remove a member (main admin only)"
)
async def remove_member(
    venue_id: str, member_id: str, user: CurrentUser, service: VenueServiceDep
) -> Response:
    await service.remove_member(user.id, venue_id, member_id)
    return Response(status_code=204)


@router.put(
    "/{venue_id}/members/{member_id}/permissions",
    response_model=MemberOut,
    summary="Replace a member's permissions (main admin only)",
    description="Takes effect at the verifier within 2 seconds.",
)
async def set_permissions(
    venue_id: str,
    member_id: str,
    body: PermissionsUpdate,
    user: CurrentUser,
    service: VenueServiceDep,
) -> MemberOut:
    member = await service.set_permissions(
        user.id, venue_id, member_id, [p.value for p in body.permissions]
    )
    return member_out(member)


@router.get("/{venue_id}/rule", response_model=RuleOut, summary="The venue's entry rule")
async def get_rule(venue_id: str, user: CurrentUser, service: VenueServiceDep) -> RuleOut:
    return RuleOut.model_validate(await service.rule(user.id, venue_id))


@router.put(
    "/{venue_id}/rule",
    response_model=RuleOut,
    summary="Replace the venue's entry rule (main admin only)",
    description="All three fields, a whole replacement; `allowed_colors` must include "
    "`green`. Default: green only, no NAT or vaccine requirement.",
)
async def put_rule(
    venue_id: str, body: RuleIn, user: CurrentUser, service: VenueServiceDep
) -> RuleOut:
    rule = await service.set_rule(user.id, venue_id, body)
    return RuleOut.model_validate(rule)
