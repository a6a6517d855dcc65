"""A venue's access records over HTTP: JSON pages or a CSV export."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from hc_common.clock import to_utc
from hc_common.i18n import wants_english
from venue_admin.access.schemas import (
    AccessRecordList,
    AccessRecordOut,
    Decision,
    QueryTime,
    Scanner,
)
from venue_admin.deps import AccessRecordServiceDep, CurrentUser

router = APIRouter(tags=["access records"])


def content_disposition(file_name: str, ascii_file_name: str) -> str:
    """An attachment named `file_name` (RFC 6266: `filename*` in UTF-8, percent-encoded),
    with `ascii_file_name` for clients that do not read `filename*`."""
    return (
        f"attachment; filename=\"{ascii_file_name}\"; filename*=UTF-8''{quote(file_name, safe='')}"
    )


DESCRIPTION = """Members of the venue only (anyone else 403 `forbidden`, an unknown venue 404).

Newest first (by `checked_at`, then `record_id`). `from` is inclusive and `to` exclusive,
RFC 3339 times with their offset (`2026-11-28T08:00:00Z`); anything else (a number, a date
alone, a time without offset) → 422 `invalid_time`. `decision` is `pass`, `deny` or
`manual_check`. `cursor` is the opaque `next_cursor` of the previous page; a cursor that
is not one → 422 `invalid_cursor`.

With `Accept: text/csv` the answer is every matching row (no cursor, `limit` ignored),
streamed, as a file that opens correctly in Excel on a Chinese Windows machine: UTF-8 with a
byte-order mark, CRLF line ends, the header
`record_id,checked_at,checked_at_local,decision,reasons,reasons_text,masked_name,color,scanner_kind,scanner_id,scanner_name`.
`checked_at` is UTC (RFC 3339); `checked_at_local` the same instant in China time
(`2026-11-28 20:15:03`). `decision`, `reasons` (joined by `;`) and `color` are the codes
of the JSON items; `reasons_text` the reasons in words, Chinese joined by `、`, or English
joined by `; ` with `Accept-Language: en`. `scanner_name` is the device's name (a removed
device's too) or the member's masked phone (`138****8000`); empty for a member since
removed, whose phone the venue no longer keeps (`scanner_id` still says who scanned).
A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a
leading `'`, so that no spreadsheet runs it. The file is named after the venue and the
filters (`出入记录_南宁东站_from-20261128-000000_to-20261129-000000_deny.csv`, times in
China time; `access-records_...` in English) in `Content-Disposition`'s `filename*`, with
an ASCII `filename` (the venue's id in place of its name) for older clients. Records
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
        export = await service.export_csv(
            user.id,
            venue_id,
            start=start,
            end=end,
            decision=wanted,
            english=wants_english(request.headers.get("accept-language")),
        )
        return StreamingResponse(
            export.body,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": content_disposition(export.file_name, export.ascii_file_name)
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
