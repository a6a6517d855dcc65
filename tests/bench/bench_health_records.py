"""NAT ingest on PostgreSQL (database hc_bench_hr): rows a second for batches of 10,000
through health-records' HTTP route (in process: parse, validate, persons, results, status,
outbox), against a baseline measured in the same run: asyncpg COPY of the same rows into a
scratch table (the fastest the database takes these rows at all)."""

import asyncio
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

BATCH = 10_000
BATCHES = 3
DB = "hc_bench_hr"


def _rows(batch: int, hours_ago: int = 10) -> list[dict[str, str]]:
    """A batch of 10,000 persons (the same persons for the same `batch`), each with a new
    report taken `hours_ago`."""
    from hc_common.testing import make_id_number

    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for i in range(BATCH):
        n = batch * BATCH + i
        birth = date(1940, 1, 1) + timedelta(days=n // 1000)
        sample = now - timedelta(hours=hours_ago)
        rows.append(
            {
                "report_id": uuid.uuid4().hex,
                "id_number": make_id_number(birth, serial=n % 1000),
                "name": "李秀华",
                "sample_time": sample.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "report_time": (sample + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "result": "positive" if i % 100 == 0 else "negative",
                "institution": "南宁市第一人民医院",
            }
        )
    return rows


async def _baseline(url: str, batches: list[list[dict[str, str]]]) -> float:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_scratch; CREATE TABLE bench_scratch ("
            "report_id text PRIMARY KEY, id_number text, name text, "
            "sample_time timestamptz, report_time timestamptz, result text, "
            "institution text)"
        )
        elapsed = 0.0
        for rows in batches:
            started = time.perf_counter()
            records = [
                (
                    r["report_id"],
                    r["id_number"],
                    r["name"],
                    datetime.fromisoformat(r["sample_time"]),
                    datetime.fromisoformat(r["report_time"]),
                    r["result"],
                    r["institution"],
                )
                for r in rows
            ]
            await conn.copy_records_to_table("bench_scratch", records=records)
            elapsed += time.perf_counter() - started
        await conn.execute("DROP TABLE bench_scratch")
        return len(batches) * BATCH / elapsed
    finally:
        await conn.close()


async def _drained(app: "FastAPI", within: float = 120.0) -> float:
    """Seconds until the outbox is empty (the status events relayed to JetStream)."""
    from hc_common.testing import eventually

    relay = app.state.runtime.relay

    async def empty() -> bool:
        return not await relay.pending()

    started = time.perf_counter()
    await eventually(empty, within)
    return time.perf_counter() - started


async def _service(
    url: str,
    nats_url: str,
    batches: list[list[dict[str, str]]],
    updates: list[list[dict[str, str]]],
) -> float:
    import orjson

    from hc_common.testing import app_client
    from health_records.main import create_app
    from health_records.testing import LAB, hr_settings

    # Bodies encoded before the clock starts: the lab's JSON encoding is not the service's work.
    bodies = [orjson.dumps({"results": rows}) for rows in batches]
    update_bodies = [orjson.dumps({"results": rows}) for rows in updates]
    headers = {**LAB, "content-type": "application/json"}
    app = create_app(hr_settings(url, nats_url))
    async with app_client(app) as client:
        elapsed, slowest, relayed = 0.0, 0.0, 0.0
        for body in bodies:
            started = time.perf_counter()
            response = await client.post(
                "/v1/nat-results/batch", headers=headers, content=body, timeout=120
            )
            took = time.perf_counter() - started
            assert response.status_code == 200 and response.json()["accepted"] == BATCH, (
                response.text[:300]
            )
            elapsed += took
            slowest = max(slowest, took)
            # The relay publishes the batch's status events before the next batch is timed.
            relayed += await _drained(app)
        # The same persons again with newer results: every person known, locked and updated.
        updating = 0.0
        for body in update_bodies:
            started = time.perf_counter()
            response = await client.post(
                "/v1/nat-results/batch", headers=headers, content=body, timeout=120
            )
            updating += time.perf_counter() - started
            assert response.status_code == 200 and response.json()["accepted"] == BATCH, (
                response.text[:300]
            )
            relayed += await _drained(app)
        repeat_started = time.perf_counter()
        again = await client.post(
            "/v1/nat-results/batch", headers=headers, content=bodies[0], timeout=120
        )
        repeat = time.perf_counter() - repeat_started
        assert again.json()["duplicates"] == BATCH, again.text[:300]
        rate = len(batches) * BATCH / elapsed
        # Printed here: the service's logging set-up owns the streams once its lifespan ends.
        print(
            f"service: NAT ingest POST /v1/nat-results/batch on PostgreSQL: {rate:,.0f} rows/s "
            f"over {len(batches)} batches of {BATCH:,} rows of new persons (slowest batch "
            f"{slowest:.2f} s; goal >= 20,000 rows/s)",
            flush=True,
        )
        print(
            f"service: the same persons again with newer results (every person known and "
            f"updated): {len(updates) * BATCH / updating:,.0f} rows/s over {len(updates)} "
            f"batches of {BATCH:,}",
            flush=True,
        )
        print(
            f"service: repeated batch of {BATCH:,} (all duplicates): {BATCH / repeat:,.0f} "
            f"rows/s ({repeat:.2f} s)",
            flush=True,
        )
        events = (len(batches) + len(updates)) * BATCH
        print(
            f"outbox relay: {events / relayed:,.0f} status events/s to JetStream (not in the "
            f"figures above)",
            flush=True,
        )
        return rate


def main() -> None:
    from hc_common.devstack import free_port, nats_server_binary
    from hc_common.migrations import upgrade_head
    from hc_common.testing import recreate_postgres_database
    from health_records import SERVICE_ROOT

    prefix = os.environ.get("BENCH_DATABASE_URL_PREFIX", "postgresql://postgres@127.0.0.1:5432/")
    print("command: .venv/bin/python -m tests.bench health_records")
    url = recreate_postgres_database(prefix + DB)
    upgrade_head(SERVICE_ROOT, url)
    import subprocess
    import tempfile

    port = free_port()
    nats = subprocess.Popen(
        [
            nats_server_binary(),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            tempfile.mkdtemp(prefix="hc-bench-nats-"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        batches = [_rows(i) for i in range(BATCHES)]
        base = asyncio.run(_baseline(url, batches))
        print(
            f"baseline: asyncpg COPY of the same rows into a scratch table: {base:,.0f} rows/s",
            flush=True,
        )
        updates = [_rows(i, hours_ago=2) for i in range(BATCHES)]
        rate = asyncio.run(_service(url, f"nats://127.0.0.1:{port}", batches, updates))
        print(f"ratio service/baseline: {rate / base:.3f}", flush=True)
    finally:
        nats.terminate()
        nats.wait(10)


if __name__ == "__main__":
    main()
