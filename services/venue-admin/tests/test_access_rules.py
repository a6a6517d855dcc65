"""Access-record rules on their own (no database, no bus): what the consumer accepts, the
page cursor, and the purge that keeps going when the database fails."""

import asyncio
import base64
from datetime import UTC, datetime

import pytest
import stamina

from hc_common.clock import to_utc
from hc_common.errors import Unprocessable
from hc_common.events.envelope import ACCESS_RECORD_CREATED, Envelope
from hc_common.ids import new_id
from venue_admin.access import handlers
from venue_admin.access import service as access_records
from venue_admin.access.models import AccessRecord
from venue_admin.access.repository import _COLUMNS, _driver_row


def payload(record_id: str, **changes: object) -> dict[str, object]:
    return {
        "record_id": record_id,
        "venue_id": "venue-1",
        "checked_at": "2026-11-27T08:00:00.123456Z",
        "decision": "manual_check",
        "reasons": ["status_unavailable"],
        "masked_name": None,
        "color": None,
        "credential_id": None,
        "scanner": {"kind": "user", "id": "user-1"},
        **changes,
    }


async def test_the_consumer_stores_what_fits_the_schema_and_drops_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[list[dict[str, object]]] = []

    async def store(sessionmaker: object, records: list[dict[str, object]]) -> int:
        batches.append(records)
        return len(records)

    monkeypatch.setattr(handlers.service, "store", store)
    envelopes = [
        Envelope(type=ACCESS_RECORD_CREATED, data=data)
        for data in [
            payload("r1"),
            payload("r2", decision="open"),
            payload("r3", color="blue"),
            payload("r4", reasons="color_red"),
            {key: value for key, value in payload("r5").items() if key != "scanner"},
            payload("r6", checked_at="2026-11-27T16:00:00+08:00", color="green"),
        ]
    ]
    assert await handlers.store_access_records(None, envelopes) == 2
    [records] = batches
    assert [r["record_id"] for r in records] == ["r1", "r6"]
    # Validated: the times are datetimes, and the row the store writes is in UTC.
    first, second = (dict(zip(_COLUMNS, _driver_row(r, to_utc), strict=True)) for r in records)
    assert first["checked_at"] == datetime(2026, 11, 27, 8, 0, 0, 123456, UTC)
    assert second["checked_at"] == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert first["scanner_kind"] == "user"


def test_a_cursor_reads_back_as_the_row_it_was_made_from() -> None:
    at = datetime(2026, 11, 27, 8, 0, 0, 5, UTC)
    record_id = new_id()
    record = AccessRecord(record_id=record_id, checked_at=at)
    assert access_records.decode_cursor(access_records.encode_cursor(record)) == (at, record_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "!!",
        "bm90LWEtY3Vyc29y",
        "",
        "////",
        # A time and a record id that is not one of ours (a NUL: PostgreSQL cannot take it).
        base64.urlsafe_b64encode(b"2026-11-28T08:00:00+00:00|\x00").decode(),
        base64.urlsafe_b64encode(b"2026-11-28T08:00:00+00:00|r1").decode(),
    ],
)
def test_anything_else_is_an_invalid_cursor(cursor: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        access_records.decode_cursor(cursor)
    assert raised.value.code == "invalid_cursor"


async def test_a_failing_purge_is_retried_and_the_rounds_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes: list[int | Exception] = [
        ConnectionError("database away"),
        ConnectionError("still away"),
        3,
        0,
        ConnectionError("away again"),
        1,
    ]
    calls: list[int] = []
    done = asyncio.Event()

    async def purge(sessionmaker: object, retention_days: int) -> int:
        calls.append(retention_days)
        outcome = outcomes.pop(0)
        if not outcomes:
            done.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(access_records, "purge", purge)
    with stamina.set_testing(True, attempts=3):  # retries without the backoff's waits
        task = asyncio.create_task(access_records.purge_forever(None, 28, interval=0.01))
        await asyncio.wait_for(done.wait(), timeout=5)
        assert not task.done()  # the loop outlived every failure
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls == [28] * 6
