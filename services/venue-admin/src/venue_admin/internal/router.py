from fastapi import APIRouter, Query

from hc_common.deps import ServiceKeyDep, SessionDep
from hc_common.errors import NotFound
from venue_admin.venue.repository import VenueRepository
from venue_admin.venue.service import member_event, rule_event

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[ServiceKeyDep])


@router.get("/venues/{venue_id}/scan-context",
            summary="What the verifier needs to check a scanner at a venue, and the rule")
async def scan_context(venue_id: str, session: SessionDep,
                       user_id: str | None = Query(None)) -> dict[str, object]:
    repo = VenueRepository(session)
    if await repo.venue(venue_id) is None:
        raise NotFound()
    member = await repo.member(venue_id, user_id) if user_id else None
    return {"venue_id": venue_id,
            "member": member_event(member) if member else None,
            "rule": rule_event(venue_id, await repo.rule(venue_id))}
