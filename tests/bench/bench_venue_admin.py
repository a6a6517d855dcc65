"""venue-admin on PostgreSQL: access-record ingest rate (the consumer's path vs. a plain bulk
insert of the same rows) and the list query over 1,000,000 rows of one venue.

    .venv/bin/python -m tests.bench venue_admin   (needs PostgreSQL at 127.0.0.1:5432)
"""

import asyncio
import os
import time
from datetime import timedelta

from sqlalchemy import insert, text

from hc_common.clock import utcnow
from hc_common.db import Database
from hc_common.events.envelope import ACCESS_RECORD_CREATED, Envelope
from hc_common.events.schemas import parse_payload
from hc_common.ids import new_id
from hc_common.migrations import upgrade_head
from hc_common.testing import recreate_postgres_database

URL = os.environ.get("BENCH_VA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hc_bench_va")
INGEST_ROWS = 50_000
BATCH = 500
LIST_ROWS = 1_000_000


def _events(venue_id: str, n: int) -> list[Envelope]:
    now = utcnow()
    return [
        Envelope(
            type=ACCESS_RECORD_CREATED,
            data={
                "record_id": new_id(),
                "venue_id": venue_id,
                "checked_at": (now - timedelta(seconds=i)).isoformat(),
                "decision": "pass",
                "reasons": [],
                "masked_name": "李*华",
                "color": "green",
                "credential_id": new_id(),
                "scanner": {"kind": "device", "id": "gate-1"},
            },
        )
        for i in range(n)
    ]


async def run() -> None:
    from venue_admin.access.handlers import store_access_records
    from venue_admin.access.models import AccessRecord
    from venue_admin.access.repository import AccessRecordRepository, row_of

    db = Database(URL)
    try:
        # Baseline: the same rows, plain INSERT (no conflict handling, no event decoding).
        events = _events("bench-baseline", INGEST_ROWS)
        rows = [row_of(parse_payload(ACCESS_RECORD_CREATED, e.data)) for e in events]
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            async with db.sessionmaker() as session:
                await (await session.connection()).execute(
                    insert(AccessRecord), rows[i : i + BATCH]
                )
                await session.commit()
        baseline = time.perf_counter() - started

        # The consumer's path: envelopes -> validated payloads -> INSERT ... ON CONFLICT DO
        # NOTHING, each batch published twice (every record a duplicate once).
        events = _events("bench-ingest", INGEST_ROWS)
        started = time.perf_counter()
        for i in range(0, len(events), BATCH):
            await store_access_records(db.sessionmaker, events[i : i + BATCH])
        ours = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(events), BATCH):
            await store_access_records(db.sessionmaker, events[i : i + BATCH])
        replay = time.perf_counter() - started
        async with db.sessionmaker() as session:
            count = await session.scalar(
                text("SELECT count(*) FROM access_records WHERE venue_id = 'bench-ingest'")
            )
        assert count == INGEST_ROWS, count
        print(f"ingest {INGEST_ROWS} rows in batches of {BATCH}:")
        print(f"  baseline plain bulk INSERT        {INGEST_ROWS / baseline:10.0f} rows/s")
        print(
            f"  handler ON CONFLICT DO NOTHING    {INGEST_ROWS / ours:10.0f} rows/s"
            f"  ratio to baseline {baseline / ours:.2f}"
        )
        print(f"  replay of the same (all dupes)    {INGEST_ROWS / replay:10.0f} rows/s")

        # 1,000,000 rows of one venue, spread over 28 days, generated server-side.
        async with db.sessionmaker() as session:
            started = time.perf_counter()
            await session.execute(
                text("""
                INSERT INTO access_records (record_id, venue_id, checked_at, decision, reasons,
                    masked_name, color, credential_id, scanner_kind, scanner_id)
                SELECT 'r' || lpad(g::text, 12, '0'), 'bench-list',
                       now() - (g * interval '2.4 seconds'),
                       (ARRAY['pass','deny','manual_check'])[1 + g % 3],
                       '[]'::json, '李*华', 'green', NULL, 'device', 'gate-1'
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
    finally:
        await db.dispose()


def main() -> None:
    print(f"$ .venv/bin/python -m tests.bench venue_admin   (database {URL})")
    from venue_admin import SERVICE_ROOT

    url = recreate_postgres_database(URL)
    upgrade_head(SERVICE_ROOT, url)
    asyncio.run(run())


if __name__ == "__main__":
    main()
