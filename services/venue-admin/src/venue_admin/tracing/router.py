"""The co-presence query for health-records' contact tracing (service key)."""

import orjson
from fastapi import APIRouter, Request, Response

from hc_common.clock import rfc3339
from hc_common.deps import ServiceKeyDep, SessionDep
from venue_admin.tracing.schemas import CoPresenceAnswer, CoPresenceQuery
from venue_admin.tracing.service import co_presence

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[ServiceKeyDep])


@router.post(
    "/co-presence",
    response_model=CoPresenceAnswer,
    summary="A case's visits and who was scanned near them (contact tracing)",
    description="`visits`: every scan of `subject_id` from `from` to `to` (both included, at "
    "most 14 days apart), oldest first. `contacts`: every scan of another subject at one of "
    "those venues within `window_minutes` (1-240) before or after one of those visits, "
    "whatever the scan's decision, by time, venue id and subject id, so that a subject's "
    "first row is their first such scan (a tie between venues goes to the smaller venue id); "
    "a subject scanned again is there again (the reader keeps the first: a sort by subject "
    "here cost more than the rest of the query); a window may reach beyond `from` and "
    "`to`. The contacts come in parts (a city's trace is read as two halves of the time at "
    "once), each columns, the parts in time order. Scans whose "
    "credential did not check name no subject and are left out. "
    "`records_kept_since`: the retention cut-off, before which records are purged. "
    "Pseudonymous subject ids and masked names only: no personal data crosses. 422 "
    "`invalid_period` when `to` is before `from`, `period_too_long` when more than 14 days "
    "after it.",
)
async def co_presence_query(
    body: CoPresenceQuery, request: Request, session: SessionDep
) -> Response:
    settings = request.app.state.settings
    found = await co_presence(
        session,
        body.subject_id,
        body.from_,
        body.to,
        body.window,
        settings.access_record_retention_days,
    )
    names = found.venue_names
    visits = [
        {
            "venue_id": v.venue_id,
            "venue_name": names.get(v.venue_id),
            "checked_at": rfc3339(v.checked_at),
        }
        for v in found.visits
    ]
    # The contacts go out as the database wrote them (CoPresenceAnswer documents the shape).
    content = b"".join(
        [
            b'{"visits":',
            orjson.dumps(visits),
            b',"contacts":[',
            b",".join(found.contacts),
            b"]",
            b',"records_kept_since":',
            orjson.dumps(rfc3339(found.records_kept_since)),
            b"}",
        ]
    )
    return Response(content, media_type="application/json")
