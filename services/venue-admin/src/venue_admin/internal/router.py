"""Endpoints for the verifier (service key): one venue's scan context, the cold-start
snapshot."""

from fastapi import APIRouter, Query

from hc_common.deps import ServiceKeyDep
from venue_admin.deps import ScanSetupServiceDep
from venue_admin.internal.schemas import ScanContext, ScanSnapshot

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
    service: ScanSetupServiceDep,
    user_id: str | None = Query(None),
    device_id: str | None = Query(None),
) -> ScanContext:
    return await service.scan_context(venue_id, user_id, device_id)


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
    service: ScanSetupServiceDep,
    limit: int = Query(500, ge=1, le=5000),
    cursor: str | None = Query(None),
) -> ScanSnapshot:
    return await service.snapshot(limit, cursor)
