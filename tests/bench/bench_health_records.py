"""NAT ingest on PostgreSQL (database hc_bench_hr): rows a second for batches of 10,000
through health-records' HTTP route (in process, on uvloop as the service runs under uvicorn:
parse, validate, names, persons, results, status, outbox), for new persons and for known
ones, each against a baseline measured in the same run: asyncpg COPY of the same rows into
a scratch table (the fastest the database takes these rows at all). Goal: each ratio >= 0.2.

Warm, as a lab's system meets the service: before the timed batches, one batch of other
persons goes through both kinds (new, then known) and through the COPY, untimed, so that
what a process and a connection do once (statements prepared, the scratch tables made, the
code's first run) is not charged to the first timed batch of each kind."""

import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import uvloop

if TYPE_CHECKING:
    from fastapi import FastAPI

BATCH = 10_000
# Timed batches of each kind: each figure is a ratio of sums, and on a shared machine one
# batch in three can be a fifth slower or faster than the others; five steady it.
BATCHES = 5
DB = "hc_bench_hr"
GOAL = 0.2  # service / COPY, for new persons and for known ones


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


class Baseline:
    """asyncpg COPY of a batch's rows into a scratch table (of the rows' own columns, a primary
    key on the report id), on a connection of its own: the seconds it takes. Measured for each
    batch just before the service takes it, so that both see the same load of a shared machine."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+asyncpg", "postgresql")
        self.conn: Any = None

    async def __aenter__(self) -> "Baseline":
        import asyncpg

        self.conn = await asyncpg.connect(self.url)
        await self.conn.execute(
            "DROP TABLE IF EXISTS bench_scratch; CREATE TABLE bench_scratch ("
            "report_id text PRIMARY KEY, id_number text, name text, "
            "sample_time timestamptz, report_time timestamptz, result text, "
            "institution text)"
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.conn.execute("DROP TABLE bench_scratch")
        await self.conn.close()

    async def copy(self, rows: list[dict[str, str]]) -> float:
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
        await self.conn.copy_records_to_table("bench_scratch", records=records)
        return time.perf_counter() - started


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
    warm_up: list[list[dict[str, str]]],
) -> None:
    """Rows a second of the service, new persons then the same persons known, each batch
    against a COPY of its rows just before it; prints the figures and the ratios."""
    import orjson

    from hc_common.testing import app_client
    from health_records.main import create_app
    from health_records.testing import LAB, hr_settings

    headers = {**LAB, "content-type": "application/json"}
    app = create_app(hr_settings(url, nats_url))
    # (rows a second of the service, of the COPY) for new persons, then for known ones.
    figures: list[tuple[float, float]] = []
    async with app_client(app) as client, Baseline(url) as baseline:

        async def push(body: bytes) -> tuple[float, int]:
            started = time.perf_counter()
            response = await client.post(
                "/v1/nat-results/batch", headers=headers, content=body, timeout=120
            )
            took = time.perf_counter() - started
            assert response.status_code == 200, response.text[:300]
            return took, int(response.json()["accepted"])

        # The warm-up (untimed): persons of their own, new and then known, and a COPY.
        for rows in warm_up:
            await baseline.copy(rows)
            assert (await push(orjson.dumps({"results": rows})))[1] == BATCH
            await _drained(app)
        relayed, slowest = 0.0, 0.0
        # New persons, then the same persons again with newer results: every person known,
        # locked and updated.
        for kind in (batches, updates):
            served = copied = 0.0
            for rows in kind:
                # Encoded before the clock starts: the lab's JSON encoding is not the
                # service's work.
                body = orjson.dumps({"results": rows})
                copied += await baseline.copy(rows)
                took, accepted = await push(body)
                assert accepted == BATCH
                served += took
                slowest = max(slowest, took)
                # The relay publishes the batch's status events before the next is timed.
                relayed += await _drained(app)
            figures.append((len(kind) * BATCH / served, len(kind) * BATCH / copied))
        repeat, accepted = await push(orjson.dumps({"results": batches[0]}))
        assert accepted == 0
    (new, new_base), (known, known_base) = figures
    # Printed here: the service's logging set-up owns the streams once its lifespan ends.
    print(
        f"baseline: asyncpg COPY of the same rows into a scratch table, just before each "
        f"batch: {new_base:,.0f} rows/s (new persons' rows), {known_base:,.0f} rows/s (known "
        f"persons' rows)",
        flush=True,
    )
    print(
        f"service: NAT ingest POST /v1/nat-results/batch on PostgreSQL: {new:,.0f} rows/s "
        f"over {len(batches)} batches of {BATCH:,} rows of new persons; the same persons again "
        f"with newer results (every person known and updated): {known:,.0f} rows/s over "
        f"{len(updates)} batches (slowest batch {slowest:.2f} s)",
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
    print(
        f"ratio service/baseline: new persons {new / new_base:.3f}x, known persons "
        f"{known / known_base:.3f}x (goal >= {GOAL}x each)",
        flush=True,
    )


def main() -> None:
    from hc_common.devstack import free_port, nats_server_binary
    from hc_common.migrations import upgrade_head
    from hc_common.testing import recreate_postgres_database
    from health_records import SERVICE_ROOT

    prefix = os.environ.get("BENCH_DATABASE_URL_PREFIX", "postgresql://postgres@127.0.0.1:5432/")
    print("command: .venv/bin/python -m tests.bench health_records")
    # The ratios are taken on a shared machine: its load says how far to trust a run.
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
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
        updates = [_rows(i, hours_ago=2) for i in range(BATCHES)]
        # Persons of no timed batch: new, then known.
        warm_up = [_rows(BATCHES), _rows(BATCHES, hours_ago=2)]
        uvloop.run(_service(url, f"nats://127.0.0.1:{port}", batches, updates, warm_up))
    finally:
        nats.terminate()
        nats.wait(10)


if __name__ == "__main__":
    main()
