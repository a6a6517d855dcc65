"""Contact tracing for the health authority: trace a case, read a trace again, the audit list."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from hc_common.crypto import decode_key
from hc_common.deps import SessionDep
from hc_common.hygiene import ID_PATTERN
from health_records.clients.venue_admin import VenueAdminClient
from health_records.deps import AuthorityDep, PersonServiceDep
from health_records.tracing.masking import IdNumberMasker
from health_records.tracing.schemas import Trace, TraceList, TracingCreate
from health_records.tracing.service import TracingService


async def tracing_service(
    request: Request, session: SessionDep, persons: PersonServiceDep
) -> TracingService:
    masker = IdNumberMasker(decode_key(request.app.state.settings.data_key), persons.sealer)
    return TracingService(
        session, persons, VenueAdminClient(request.app.state.venue_admin_http), masker
    )


def json_bytes(content: bytes) -> Response:
    """An answer made as JSON bytes by the service (documented by the route's response_model,
    which FastAPI does not apply to a Response: the bytes are not validated again)."""
    return Response(content, media_type="application/json")


TracingServiceDep = Annotated[TracingService, Depends(tracing_service)]
Role = Annotated[str, AuthorityDep]
# The form is documented; the check is require_id's (404, not FastAPI's 422).
TraceIdPath = Annotated[str, Path(json_schema_extra={"pattern": ID_PATTERN})]

router = APIRouter(tags=["tracing"])


@router.post(
    "/v1/tracing",
    response_model=Trace,
    summary="Trace a case's contacts (时空伴随), and turn the green ones yellow or red",
    description="""`visits`: every scan of the case's credentials from `from` to `to` (both
included, at most 14 days apart: else 422 `period_too_long`; `to` before `from`: 422
`invalid_period`), oldest first. `contacts`: every other person scanned at one of those venues
within `window_minutes` (1-240, else 422 `invalid_window`) before or after one of those visits,
whatever the scan's decision, once per person (their first such scan), oldest first; a window
may reach up to `window_minutes` beyond `from` and `to`. Scans whose credential did not check
name no one and are not contacts. An ID number no person holds: 404 `not_found`; a person
without scans: 200 with empty lists.

With `apply_color` (`yellow` or `red`), each contact whose code is green turns that colour, all
in one batch (reason: `reason`, else `时空伴随 <trace_id>`; kept in the code's history); a
yellow or red code is left as it is. The changes reach the verifiers like any other (within 2
seconds; 10 seconds for a trace that changes more than 1,000 codes). `color_before` and
`color_after` say what happened to each contact. Without `apply_color`, nothing changes (a
preview: `color_after` equals `color_before`).

Names and ID numbers are masked: a contact's name is the one their scan showed (the
credential's, as the venue's records keep it), else the name on file here. Extra members:
`apply_color`; `changed` (codes turned); `unknown_contacts`, the persons scanned within a
window whom health-records does not know (left out of `contacts`: their records here are
missing, so there is no one to name or turn; 0 unless the services' data disagree);
`records_kept_since`, set when `from` is before it: access records are kept 28 days, so visits
and contacts before that time cannot be found.

Every request that gets an answer is kept for the audit (`GET /v1/tracing`), its answer
included. 503 `service_unavailable` when venue-admin's records cannot be read (nothing is
changed then).""",
)
async def trace(role: Role, body: TracingCreate, service: TracingServiceDep) -> Response:
    return json_bytes(await service.trace(body, role))


@router.get(
    "/v1/tracing/{trace_id}",
    response_model=Trace,
    summary="A trace's answer again, as it was given",
    description="404 `not_found` for an unknown trace id or one not of the system's form.",
)
async def get_trace(_: Role, trace_id: TraceIdPath, service: TracingServiceDep) -> Response:
    return json_bytes(await service.get(trace_id))


@router.get(
    "/v1/tracing",
    response_model=TraceList,
    summary="Every tracing request, newest first (the audit trail)",
    description="`visits` and `contacts` are counts; `applied` says whether colours were "
    "applied (`changed`: how many codes turned), `role` the role whose key asked. Pass "
    "`next_cursor` back as `cursor` until it is null; 422 `invalid_cursor` for a cursor this "
    "service did not write.",
)
async def list_traces(
    _: Role,
    service: TracingServiceDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=200),
) -> TraceList:
    page = await service.page(cursor, limit)
    return TraceList(items=page.items, next_cursor=page.next_cursor)
