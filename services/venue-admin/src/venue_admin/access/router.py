"""A venue's access records over HTTP: JSON pages or a CSV export."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from hc_common.clock import to_utc
from venue_admin.access.schemas import (
    AccessRecordList,
    AccessRecordOut,
    Decision,
    QueryTime,
    Scanner,
)
from venue_admin.deps import AccessRecordServiceDep, CurrentUser

router = APIRouter(tags=["access records"])

DESCRIPTION = """Members of the venue only (anyone else 403 `forbidden`, an unknown venue 404).

Newest first (by `checked_at`, then `record_id`). `from` is inclusive and `to` exclusive,
RFC 3339 times with their offset (`2026-11-28T08:00:00Z`); anything else (a number, a date
alone, a time without offset) → 422 `invalid_time`. `decision` is `pass`, `deny` or
`manual_check`. `cursor` is the opaque `next_cursor` of the previous page; a cursor that
is not one → 422 `invalid_cursor`.

With `Accept: text/csv` the answer is every matching row (no cursor, `limit` ignored),
streamed, with the header
`record_id,checked_at,decision,reasons,masked_name,color,scanner_kind,scanner_id`,
`reasons` joined by `;` and CRLF line ends. A cell that starts with `=`, `+`, `-`, `@`, a tab
or a carriage return is written with a leading `'`, so that no spreadsheet runs it. Records
are kept for `VENUE_ADMIN_ACCESS_RECORD_RETENTION_DAYS` days (default 28), then purged."""


@router.get(
    "/v1/venues/{venue_id}/access-records",
    response_model=AccessRecordList,
    summary="Access records (出入记录) of the venue; JSON pages or a CSV export",
    description=DESCRIPTION,
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_access_records(
    venue_id: str,
    user: CurrentUser,
    service: AccessRecordServiceDep,
    request: Request,
    start: Annotated[QueryTime | None, Query(alias="from")] = None,
    end: Annotated[QueryTime | None, Query(alias="to")] = None,
    decision: Annotated[Decision | None, Query()] = None,
    cursor: str | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
) -> AccessRecordList | StreamingResponse:
    start = to_utc(start) if start else None
    end = to_utc(end) if end else None
    wanted = decision.value if decision else None
    if "text/csv" in request.headers.get("accept", ""):
        body = await service.export_csv(user.id, venue_id, start=start, end=end, decision=wanted)
        return StreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="access-records-{venue_id}.csv"'
            },
        )
    page = await service.page(
        user.id, venue_id, start=start, end=end, decision=wanted, cursor=cursor, limit=limit
    )
    items = [
        AccessRecordOut(
            record_id=r.record_id,
            checked_at=r.checked_at,
            decision=r.decision,
            reasons=list(r.reasons),
            masked_name=r.masked_name,
            color=r.color,
            scanner=Scanner(kind=r.scanner_kind, id=r.scanner_id),
        )
        for r in page.items
    ]
    return AccessRecordList(items=items, next_cursor=page.next_cursor)
