"""The rules of access records: stored once per record id, shown to the venue's members
newest first, kept for the retention period and then purged."""

import asyncio
import base64
import csv
import io
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from hc_common.clock import to_utc, utcnow
from hc_common.errors import Unprocessable
from hc_common.events.envelope import Envelope
from venue_admin.access.models import AccessRecord
from venue_admin.access.repository import AccessRecordRepository
from venue_admin.access.schemas import CSV_HEADER

log = logging.getLogger("venue_admin.access")

DECISIONS = {"pass", "deny", "manual_check"}


def row_from_event(data: dict[str, Any]) -> dict[str, Any]:
    """The table row of an access-record event (the verifier's `record()` payload)."""
    scanner = data.get("scanner") or {}
    decision = str(data["decision"])
    if decision not in DECISIONS:
        raise ValueError("decision")
    return {
        "record_id": str(data["record_id"]),
        "venue_id": str(data["venue_id"]),
        "checked_at": to_utc(datetime.fromisoformat(str(data["checked_at"]))),
        "decision": decision,
        "reasons": [str(r) for r in data.get("reasons") or []],
        "masked_name": data.get("masked_name"),
        "color": data.get("color"),
        "credential_id": data.get("credential_id"),
        "scanner_kind": str(scanner.get("kind", "")),
        "scanner_id": str(scanner.get("id", "")),
    }


async def ingest(sessionmaker: async_sessionmaker, envelopes: list[Envelope]) -> int:  # type: ignore[type-arg]
    """Store a batch of access-record events; duplicates (same record id) are dropped.
    Returns how many rows were new."""
    rows: dict[str, dict[str, Any]] = {}
    for envelope in envelopes:
        try:
            row = row_from_event(envelope.data)
        except (KeyError, TypeError, ValueError):
            # Only the event id: the payload may hold a masked name.
            log.error("malformed access record dropped", extra={"event_id": envelope.id})
            continue
        rows.setdefault(row["record_id"], row)
    if not rows:
        return 0
    async with sessionmaker() as session:
        stored = await AccessRecordRepository(session).insert_new(list(rows.values()))
        await session.commit()
    return stored


def encode_cursor(record: AccessRecord) -> str:
    raw = f"{to_utc(record.checked_at).isoformat()}|{record.record_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, record_id = raw.split("|", 1)
        return to_utc(datetime.fromisoformat(at)), record_id
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable(
            "invalid_cursor", detail="分页游标无效", detail_en="Invalid cursor"
        ) from None


CSV_CHUNK = 2000


async def csv_rows(
    sessionmaker: async_sessionmaker,
    venue_id: str,
    *,  # type: ignore[type-arg]
    start: datetime | None,
    end: datetime | None,
    decision: str | None,
) -> AsyncIterator[bytes]:
    """Every matching record as CSV, newest first, read in keyset chunks so that memory
    stays flat however many rows there are."""
    from hc_common.clock import rfc3339

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    yield buffer.getvalue().encode()
    after: tuple[datetime, str] | None = None
    while True:
        async with sessionmaker() as session:
            rows = await AccessRecordRepository(session).page(
                venue_id, start=start, end=end, decision=decision, after=after, limit=CSV_CHUNK
            )
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        for r in rows:
            writer.writerow(
                [
                    r.record_id,
                    rfc3339(r.checked_at),
                    r.decision,
                    ";".join(r.reasons),
                    r.masked_name or "",
                    r.color or "",
                    r.scanner_kind,
                    r.scanner_id,
                ]
            )
        yield buffer.getvalue().encode()
        if len(rows) < CSV_CHUNK:
            return
        after = (rows[-1].checked_at, rows[-1].record_id)


async def purge(sessionmaker: async_sessionmaker, retention_days: int) -> int:  # type: ignore[type-arg]
    """Delete records checked before the retention period; returns how many."""
    async with sessionmaker() as session:
        removed = await AccessRecordRepository(session).purge_before(
            utcnow() - timedelta(days=retention_days)
        )
        await session.commit()
    return removed


async def purge_forever(
    sessionmaker: async_sessionmaker,
    retention_days: int,  # type: ignore[type-arg]
    interval: float,
) -> None:
    while True:
        try:
            removed = await purge(sessionmaker, retention_days)
            if removed:
                log.info("access records purged", extra={"count": removed})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("access record purge failed; will retry", extra={"error": repr(exc)})
        await asyncio.sleep(interval)
