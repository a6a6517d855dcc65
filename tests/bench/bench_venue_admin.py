"""venue-admin on PostgreSQL: access-record ingest rate (the consumer's path vs. a plain bulk
insert of the same rows), the list query over 1,000,000 rows of one venue, and the CSV export
of those 1,000,000 rows (rows a second vs. the bare keyset read; memory at 100,000 and at
1,000,000 rows, to show it flat).

    .venv/bin/python -m tests.bench venue_admin   (needs PostgreSQL at 127.0.0.1:5432)
"""

import asyncio
import os
import time
import tracemalloc
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from hc_common.clock import to_utc, utcnow
from hc_common.db import Database
from hc_common.events.envelope import ACCESS_RECORD_BATCH, Envelope
from hc_common.events.schemas import parse_payload
from hc_common.ids import new_id
from hc_common.migrations import upgrade_head
from hc_common.testing import recreate_postgres_database

URL = os.environ.get("BENCH_VA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hc_bench_va")
INGEST_ROWS = 48_000
PACK = 200  # records in a batch event (the verifier's journal)
FETCH = 8  # batch events a fetch of venue-admin's consumer hands its handler
BATCH = PACK * FETCH
LIST_ROWS = 1_000_000


def _events(venue_id: str, n: int) -> list[Envelope]:
    """`n` access records in batch events of PACK records, as a verifier ships them."""
    now = utcnow()
    records = [
        {
            "record_id": new_id(),
            "venue_id": venue_id,
            "checked_at": (now - timedelta(seconds=i)).isoformat(),
            "decision": "pass",
            "reasons": [],
            "masked_name": "李*华",
            "color": "green",
            "credential_id": new_id(),
            "subject_id": new_id(),
            "scanner": {"kind": "device", "id": "gate-1"},
        }
        for i in range(n)
    ]
    return [
        Envelope(
            id=f"{records[i]['record_id']}+{PACK}",
            type=ACCESS_RECORD_BATCH,
            data={"records": records[i : i + PACK]},
        )
        for i in range(0, n, PACK)
    ]


def row_of(record: Any) -> dict[str, Any]:
    """The table row of an access-record event, for the baseline's plain INSERT."""
    return {
        "record_id": record["record_id"],
        "venue_id": record["venue_id"],
        "checked_at": to_utc(record["checked_at"]),
        "decision": record["decision"],
        "reasons": record["reasons"],
        "masked_name": record["masked_name"],
        "color": record["color"],
        "credential_id": record["credential_id"],
        "subject_id": record.get("subject_id"),
        "scanner_kind": record["scanner"]["kind"],
        "scanner_id": record["scanner"]["id"],
    }


async def run() -> None:
    from venue_admin.access.handlers import store_access_records
    from venue_admin.access.models import AccessRecord
    from venue_admin.access.repository import AccessRecordRepository

    db = Database(URL)
    try:
        # Baseline: the same rows, plain INSERT (no conflict handling, no event decoding).
        events = _events("bench-baseline", INGEST_ROWS)
        rows = [
            row_of(record)
            for e in events
            for record in parse_payload(ACCESS_RECORD_BATCH, e.data)["records"]
        ]
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            async with db.sessionmaker() as session:
                await (await session.connection()).execute(
                    insert(AccessRecord), rows[i : i + BATCH]
                )
                await session.commit()
        baseline = time.perf_counter() - started

        # The consumer's path: batch events -> validated records -> INSERT ... ON CONFLICT DO
        # NOTHING, FETCH events at a time, each published twice (every record a duplicate
        # once).
        events = _events("bench-ingest", INGEST_ROWS)
        started = time.perf_counter()
        for i in range(0, len(events), FETCH):
            await store_access_records(db.sessionmaker, events[i : i + FETCH])
        ours = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(events), FETCH):
            await store_access_records(db.sessionmaker, events[i : i + FETCH])
        replay = time.perf_counter() - started
        async with db.sessionmaker() as session:
            count = await session.scalar(
                text("SELECT count(*) FROM access_records WHERE venue_id = 'bench-ingest'")
            )
        assert count == INGEST_ROWS, count
        print(f"ingest {INGEST_ROWS} rows, {FETCH} batch events of {PACK} records a write:")
        print(f"  baseline plain bulk INSERT        {INGEST_ROWS / baseline:10.0f} rows/s")
        print(
            f"  handler ON CONFLICT DO NOTHING    {INGEST_ROWS / ours:10.0f} rows/s"
            f"  ratio to baseline {baseline / ours:.2f}"
        )
        print(f"  replay of the same (all dupes)    {INGEST_ROWS / replay:10.0f} rows/s")

        # 1,000,000 rows of one venue, spread over 28 days, generated server-side, scanned by
        # 4 gates and 3 members (so that the CSV names them), deny and manual_check with reasons.
        async with db.sessionmaker() as session:
            started = time.perf_counter()
            for statement in SCANNERS_SQL:
                await session.execute(text(statement))
            await session.execute(
                text("""
                INSERT INTO access_records (record_id, venue_id, checked_at, decision, reasons,
                    masked_name, color, credential_id, scanner_kind, scanner_id)
                SELECT 'r' || lpad(g::text, 12, '0'), 'bench-list',
                       now() - (g * interval '2.4 seconds'),
                       (ARRAY['pass','deny','manual_check'])[1 + g % 3],
                       (ARRAY['[]','["color_yellow","nat_too_old"]',
                              '["status_unavailable"]'])[1 + g % 3]::json,
                       '李*华', 'green', NULL,
                       CASE WHEN g % 10 < 7 THEN 'device' ELSE 'user' END,
                       CASE WHEN g % 10 < 7 THEN 'gate-' || (g % 4) ELSE 'user-' || (g % 3) END
                FROM generate_series(1, :n) AS g"""),
                {"n": LIST_ROWS},
            )
            await session.commit()
            await session.execute(text("ANALYZE access_records"))
            print(f"generated {LIST_ROWS} rows in {time.perf_counter() - started:.1f} s")

        async def timed(label: str, **kwargs: object) -> float:
            times = []
            for _ in range(20):
                async with db.sessionmaker() as session:
                    started = time.perf_counter()
                    page = await AccessRecordRepository(session).page(
                        "bench-list", limit=51, **kwargs
                    )  # type: ignore[arg-type]
                    times.append(time.perf_counter() - started)
                    assert page
            times.sort()
            median = times[len(times) // 2]
            print(f"  {label:44s} median {median * 1000:7.2f} ms  p95 {times[18] * 1000:7.2f} ms")
            return median

        print(f"list query (limit 50) over {LIST_ROWS} rows of one venue:")
        first = await timed("first page", start=None, end=None, decision=None, after=None)
        async with db.sessionmaker() as session:
            deep = (
                await session.execute(
                    text(
                        "SELECT checked_at, record_id FROM access_records "
                        "WHERE venue_id='bench-list' "
                        "ORDER BY checked_at DESC, record_id DESC OFFSET 900000 LIMIT 1"
                    )
                )
            ).one()
        await timed(
            "page after 900,000 rows (cursor)",
            start=None,
            end=None,
            decision=None,
            after=(deep[0], deep[1]),
        )
        await timed(
            "decision=deny, last 7 days",
            start=utcnow() - timedelta(days=7),
            end=None,
            decision="deny",
            after=None,
        )
        started = time.perf_counter()
        async with db.sessionmaker() as session:
            await session.execute(
                text("SELECT count(*) FROM access_records WHERE venue_id='bench-list'")
            )
        full = time.perf_counter() - started
        print(
            f"  baseline: count(*) of the venue's rows          {full * 1000:7.2f} ms"
            f"  ratio first page / count {first / full:.3f}"
        )
        await bench_csv_export(db)
    finally:
        await db.dispose()


# The venue, its 4 gates and 3 members, as the export names them.
SCANNERS_SQL = [
    """INSERT INTO venues (id, name, category, address, region_code, created_by, created_at)
    VALUES ('bench-list', '南宁东站', 'train_station', '青秀区', '450103', 'user-0', now())""",
    """INSERT INTO devices (id, venue_id, name, manufacturer, model, secret_hash, active,
        version, created_at)
    SELECT 'gate-' || d, 'bench-list', '北门' || d || '号闸机', '', '', '', true, 1, now()
    FROM generate_series(0, 3) AS d""",
    """INSERT INTO members (venue_id, user_id, masked_phone, role, permissions, added_at,
        version)
    SELECT 'bench-list', 'user-' || m, '138****800' || m, 'sub_admin', '["reverse_scan"]',
        now(), 1
    FROM generate_series(0, 2) AS m""",
]


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        line = next(s for s in status if s.startswith("VmRSS:"))
    return int(line.split()[1])


async def bench_csv_export(db: Database) -> None:
    """The export's own code path (the generator the endpoint streams) over the 1,000,000
    rows, against the bare keyset read of the same rows in the same chunks; then once more
    under tracemalloc, the peak read at 100,000 rows and at 1,000,000."""
    from venue_admin.access import export
    from venue_admin.access.repository import AccessRecordRepository

    def export_rows() -> AsyncIterator[bytes]:
        return export.csv_rows(
            db.sessionmaker, "bench-list", start=None, end=None, decision=None, english=False
        )

    async def keyset_read(chunk: Any) -> float:
        """Seconds to read every row of the venue in the export's keyset chunks."""
        started = time.perf_counter()
        after: tuple[datetime, str] | None = None
        read = 0
        while True:
            async with db.sessionmaker() as session:
                rows = await chunk(AccessRecordRepository(session))(
                    "bench-list",
                    start=None,
                    end=None,
                    decision=None,
                    after=after,
                    limit=export.CSV_CHUNK,
                )
            read += len(rows)
            if len(rows) < export.CSV_CHUNK:
                break
            after = (rows[-1].checked_at, rows[-1].record_id)
        assert read == LIST_ROWS, read
        return time.perf_counter() - started

    # Baseline: the bare read, in plain rows as the export reads them; and for comparison in
    # ORM objects, as the JSON list reads a page.
    bare = await keyset_read(lambda repo: repo.export_chunk)
    orm = await keyset_read(lambda repo: repo.page)

    started = time.perf_counter()
    lines = size = 0
    async for piece in export_rows():
        lines += piece.count(b"\r\n")
        size += len(piece)
    ours = time.perf_counter() - started
    assert lines == LIST_ROWS + 1, lines
    print(f"CSV export of {LIST_ROWS} rows (chunks of {export.CSV_CHUNK}), {size / 2**20:.0f} MiB:")
    print(f"  baseline: bare keyset read, plain rows    {LIST_ROWS / bare:10.0f} rows/s")
    print(
        f"  the same read in ORM objects (as a page)  {LIST_ROWS / orm:10.0f} rows/s"
        f"  ratio to baseline {bare / orm:.2f}"
    )
    print(
        f"  CSV export (words, names, neutralised)    {LIST_ROWS / ours:10.0f} rows/s"
        f"  ratio to baseline {bare / ours:.2f}"
    )

    rss_before = _rss_kib()
    tracemalloc.start()
    tracemalloc.reset_peak()
    marks: dict[int, tuple[int, int]] = {}
    lines = 0
    async for piece in export_rows():
        lines += piece.count(b"\r\n")
        if lines > 100_000 and 100_000 not in marks:
            marks[100_000] = (tracemalloc.get_traced_memory()[1], _rss_kib() - rss_before)
    marks[LIST_ROWS] = (tracemalloc.get_traced_memory()[1], _rss_kib() - rss_before)
    tracemalloc.stop()
    for at, (peak, rss) in marks.items():
        print(
            f"  memory after {at:>9,} rows: tracemalloc peak {peak / 2**20:6.2f} MiB,"
            f" RSS growth {rss / 1024:6.1f} MiB"
        )
    ratio = marks[LIST_ROWS][0] / marks[100_000][0]
    print(f"  ratio of the peaks, {LIST_ROWS:,} rows / 100,000 rows: {ratio:.2f}")


def main() -> None:
    print(f"$ .venv/bin/python -m tests.bench venue_admin   (database {URL})")
    from venue_admin import SERVICE_ROOT

    url = recreate_postgres_database(URL)
    upgrade_head(SERVICE_ROOT, url)
    asyncio.run(run())


if __name__ == "__main__":
    main()
