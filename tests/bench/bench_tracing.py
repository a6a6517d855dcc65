"""Contact tracing (时空伴随) on a city's worst day, on PostgreSQL.

The case visited 50 venues in 14 days; each venue has 100,000 scans a day, spread over the
whole 14 days: 70,000,000 access records in venue-admin's own table (made by its migrations),
written by INSERT ... SELECT over generate_series (no Python per row; indexes built after,
then VACUUM ANALYZE: the co-presence scans are index-only where the pages are all visible),
for a population of 2,000,000 persons in health-records' own table (sealed as the service
seals them). Then, with the four services running as processes on those databases:

1. A trace with a 30-minute window (`POST /v1/tracing`, a preview), repeated: p50/p95 of
   the whole answer over HTTP, goal p95 < 2 s; the same-run baseline is the bare database
   work of the same trace (the visits, then each venue's co-present scans, by asyncpg on
   the same indexes, no service in between), and the plans PostgreSQL chose.
2. `apply_color` for at least 10,000 contacts (the narrowest window that finds them): the
   time from the request until the verifier has applied the last status event of the trace
   (its `verifier_stream_position` for the HEALTH stream reaches the stream's last sequence),
   goal < 10 s.

    .venv/bin/python -m tests.bench tracing

The data stays in the databases (hc_bench_tr_va, hc_bench_tr_hr) for the next run;
BENCH_TRACING_RELOAD=1 loads it again, BENCH_TRACING_SCALE=0.01 makes a hundredth of it (a
quick try of the bench itself), BENCH_TRACING_DROP=1 drops both databases at the end.
"""

import asyncio
import json
import math
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

PREFIX = os.environ.get("BENCH_DATABASE_URL_PREFIX", "postgresql://postgres@127.0.0.1:5432/")
VA_DB, HR_DB = "hc_bench_tr_va", "hc_bench_tr_hr"
SCALE = float(os.environ.get("BENCH_TRACING_SCALE", "1"))
VENUES = 50
DAYS = 14
SCANS_PER_VENUE_DAY = int(100_000 * SCALE)
POPULATION = max(int(2_000_000 * SCALE), 10_000)
WINDOW_MINUTES = 30
TRACES = int(os.environ.get("BENCH_TRACING_TRACES", "10"))
# The apply case: the narrowest window that gives at least 10,000 contacts at 50 visits.
APPLY_CONTACTS = 10_000
AUTHORITY = {"Authorization": "Bearer dev-authority-key"}


def subject_of(index: int) -> str:
    """The subject id of person `index` (26 characters of the id alphabet, as in SQL below)."""
    return "p" + str(index).rjust(25, "0")


SUBJECT_SQL = "'p' || lpad(({expr})::text, 25, '0')"


def id_number_of(index: int) -> str:
    from hc_common.testing import make_id_number

    return make_id_number(date(1940, 1, 1) + timedelta(days=index // 1000), serial=index % 1000)


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql")


# --- Loading -----------------------------------------------------------------------------------


async def load_health_records(url: str) -> None:
    """POPULATION persons, green, each with a sealed ID number and name (the service's dev keys),
    subject ids subject_of(i)."""
    import asyncpg

    from hc_common.crypto import Sealer, decode_key, keyed_hash
    from health_records.config import Settings

    settings = Settings()
    sealer = Sealer(decode_key(settings.data_key), b"person")
    pepper = decode_key(settings.pepper)
    now = datetime.now(UTC)
    name = "李秀华".encode()
    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        await conn.execute("TRUNCATE persons")
        chunk = 100_000
        for start in range(0, POPULATION, chunk):
            numbers = [id_number_of(i) for i in range(start, min(start + chunk, POPULATION))]
            sealed_numbers = sealer.seal_many([n.encode() for n in numbers])
            sealed_names = sealer.seal_many([name] * len(numbers))
            records = [
                (
                    keyed_hash(pepper, "person:" + number),
                    subject_of(start + i),
                    sealed_numbers[i],
                    sealed_names[i],
                    "green",
                    "green",
                    0,
                    1,
                    now,
                )
                for i, number in enumerate(numbers)
            ]
            await conn.copy_records_to_table(
                "persons",
                records=records,
                columns=[
                    "person_key",
                    "subject_id",
                    "id_number_enc",
                    "name_enc",
                    "color",
                    "authority_color",
                    "vaccine_doses",
                    "version",
                    "updated_at",
                ],
            )
        await conn.execute("ANALYZE persons")
    finally:
        await conn.close()


def venue_id(v: int) -> str:
    return "v" + str(v).rjust(25, "0")


async def load_venue_admin(url: str, start: datetime, visits: list[datetime]) -> None:
    """VENUES venues; SCANS_PER_VENUE_DAY scans a day at each, evenly over DAYS days from
    `start`, by subjects drawn over the population (a multiplicative hash of the scan's
    number); and the case's visits (person 0), one a venue at `visits[v]`. The table's
    indexes are dropped for the load and built again after it."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        await conn.executemany(
            "INSERT INTO venues (id, name, category, address, region_code, created_by, "
            "created_at) VALUES ($1, $2, 'metro', '南宁', '450103', $3, now())",
            [(venue_id(v), f"地铁{v + 1}号站", subject_of(0)) for v in range(VENUES)],
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'access_records' "
            "AND indexname NOT LIKE '%pkey'"
        )
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['indexname']}")
        await conn.execute(
            "ALTER TABLE access_records DROP CONSTRAINT IF EXISTS access_records_pkey"
        )
        per_venue = SCANS_PER_VENUE_DAY * DAYS
        step = timedelta(days=DAYS) / per_venue
        subject = SUBJECT_SQL.format(
            expr=f"1 + ((g::bigint * 2654435761 + $1 * 40503) % {POPULATION - 1})"
        )
        statement = (
            "INSERT INTO access_records (record_id, venue_id, checked_at, decision, reasons, "
            "masked_name, color, credential_id, subject_id, scanner_kind, scanner_id) "
            f"SELECT 'r' || lpad(($1::bigint * {per_venue} + g)::text, 25, '0'), $2, "
            f"$3::timestamptz + g * $4::interval, 'pass', '[]', '李*华', 'green', NULL, "
            f"{subject}, 'device', 'gate0000000000000000000000' "
            f"FROM generate_series(0, {per_venue - 1}) AS g"
        )

        async def venue_rows(v: int) -> None:
            c = await asyncpg.connect(asyncpg_url(url))
            try:
                await c.execute(statement, v, venue_id(v), start, step)
            finally:
                await c.close()

        started = time.perf_counter()
        for first in range(0, VENUES, 2):  # two at a time: this machine's two cores
            await asyncio.gather(*(venue_rows(v) for v in range(first, min(first + 2, VENUES))))
        await conn.executemany(
            "INSERT INTO access_records (record_id, venue_id, checked_at, decision, reasons, "
            "masked_name, color, credential_id, subject_id, scanner_kind, scanner_id) "
            "VALUES ($1, $2, $3, 'pass', '[]', '李*华', 'green', NULL, $4, 'device', "
            "'gate0000000000000000000000')",
            [
                ("c" + str(v).rjust(25, "0"), venue_id(v), at, subject_of(0))
                for v, at in enumerate(visits)
            ],
        )
        rows = VENUES * per_venue + len(visits)
        print(
            f"  loaded {rows:,} access records in {time.perf_counter() - started:.0f} s", flush=True
        )
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("ALTER TABLE access_records ADD PRIMARY KEY (record_id)")
        for index in indexes:
            await conn.execute(index["indexdef"])
        # VACUUM sets the visibility map (the load's pages all visible): the co-presence scans
        # are then index-only (the index carries subject_id and masked_name).
        await conn.execute("VACUUM (ANALYZE) access_records")
        print(
            f"  indexes built again in {time.perf_counter() - started:.0f} s: "
            + ", ".join(["primary key", *(i["indexname"] for i in indexes)]),
            flush=True,
        )
    finally:
        await conn.close()


async def loaded_meta(url: str) -> dict[str, Any] | None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        exists = await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL")
        if not exists:
            return None
        meta: dict[str, Any] = json.loads(await conn.fetchval("SELECT meta FROM bench_meta"))
        return meta
    finally:
        await conn.close()


async def save_meta(url: str, meta: dict[str, Any]) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (meta text)")
        await conn.execute("DELETE FROM bench_meta")
        await conn.execute("INSERT INTO bench_meta VALUES ($1)", json.dumps(meta))
    finally:
        await conn.close()


async def answers_as_bytes(url: str) -> None:
    """Kept data migrated before the audit's answers were kept compressed (bytea, not json:
    the tracing migration was changed in place before its release): the table takes the new
    layout, its rows (the bench's own traces) dropped."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        kind = await conn.fetchval(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'tracing_requests' AND column_name = 'answer'"
        )
        if kind != "bytea":
            await conn.execute("TRUNCATE tracing_requests")
            await conn.execute(
                "ALTER TABLE tracing_requests ALTER COLUMN answer TYPE bytea USING NULL"
            )
            print("  tracing_requests.answer made bytea (kept data of an earlier layout)")
    finally:
        await conn.close()


async def all_visible(url: str) -> None:
    """Kept data loaded before the load ended with VACUUM: its pages marked all visible now
    (once; seconds when nothing is left to do), so that index-only scans read no table page."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        pages, visible = await conn.fetchrow(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'access_records'"
        )
        if visible < pages * 0.99:
            started = time.perf_counter()
            await conn.execute("VACUUM (ANALYZE) access_records")
            print(f"  access_records vacuumed in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()


def load(va_url: str, hr_url: str) -> dict[str, Any]:
    """The data, loaded now or kept from an earlier run of the same scale."""
    from hc_common.migrations import upgrade_head
    from hc_common.testing import recreate_postgres_database
    from health_records import SERVICE_ROOT as HR_ROOT
    from venue_admin import SERVICE_ROOT as VA_ROOT

    want = {"scale": SCALE, "venues": VENUES, "days": DAYS, "population": POPULATION}
    if not os.environ.get("BENCH_TRACING_RELOAD"):
        try:
            meta = asyncio.run(loaded_meta(va_url))
        except Exception:  # no database yet
            meta = None
        if meta and all(meta.get(k) == v for k, v in want.items()):
            upgrade_head(VA_ROOT, va_url)
            upgrade_head(HR_ROOT, hr_url)
            asyncio.run(answers_as_bytes(hr_url))
            asyncio.run(all_visible(va_url))
            print(f"data: kept from the run of {meta['loaded_at']}", flush=True)
            return meta
    recreate_postgres_database(va_url)
    recreate_postgres_database(hr_url)
    upgrade_head(VA_ROOT, va_url)
    upgrade_head(HR_ROOT, hr_url)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    start = end - timedelta(days=DAYS)
    # The case's visits: one a venue, at times spread over the 14 days (a fixed pattern).
    visits = [
        start
        + timedelta(hours=6)
        + timedelta(seconds=((v * 7919) % VENUES) * (DAYS - 1) * 86400 / VENUES)
        for v in range(VENUES)
    ]
    print(
        f"data: {POPULATION:,} persons, {VENUES} venues x {SCANS_PER_VENUE_DAY:,} scans a day "
        f"x {DAYS} days = {VENUES * SCANS_PER_VENUE_DAY * DAYS:,} access records",
        flush=True,
    )
    started = time.perf_counter()
    asyncio.run(load_health_records(hr_url))
    print(f"  persons loaded in {time.perf_counter() - started:.0f} s", flush=True)
    asyncio.run(load_venue_admin(va_url, start, visits))
    meta = {
        **want,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    asyncio.run(save_meta(va_url, meta))
    return meta


# --- Measuring ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def bare_trace(
    va_url: str, start: datetime, end: datetime, window: timedelta
) -> tuple[float, int]:
    """The trace's database work alone (seconds, co-present scans): the case's visits, then
    the scans at each visited venue within the window, by asyncpg."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(va_url))
    try:
        started = time.perf_counter()
        visits = await conn.fetch(
            "SELECT venue_id, checked_at FROM access_records WHERE subject_id = $1 "
            "AND checked_at >= $2 AND checked_at < $3 ORDER BY checked_at",
            subject_of(0),
            start,
            end,
        )
        found = 0
        for visit in visits:
            rows = await conn.fetch(
                "SELECT subject_id, checked_at FROM access_records WHERE venue_id = $1 "
                "AND checked_at >= $2 AND checked_at <= $3",
                visit["venue_id"],
                visit["checked_at"] - window,
                visit["checked_at"] + window,
            )
            found += len(rows)
        return time.perf_counter() - started, found
    finally:
        await conn.close()


async def plans(va_url: str, start: datetime, end: datetime, window: timedelta) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(va_url))
    try:
        found = []
        visit = await conn.fetchrow(
            "SELECT venue_id, checked_at FROM access_records WHERE subject_id = $1 "
            "ORDER BY checked_at LIMIT 1",
            subject_of(0),
        )
        for label, sql, args in [
            (
                "the case's visits",
                "SELECT venue_id, checked_at FROM access_records WHERE subject_id = $1 "
                "AND checked_at >= $2 AND checked_at < $3 ORDER BY checked_at",
                (subject_of(0), start, end),
            ),
            (
                "one venue's scans within the window",
                "SELECT subject_id, checked_at FROM access_records WHERE venue_id = $1 "
                "AND checked_at >= $2 AND checked_at <= $3",
                (visit["venue_id"], visit["checked_at"] - window, visit["checked_at"] + window),
            ),
        ]:
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
            found.append(f"-- {label}\n" + "\n".join(r[0] for r in rows))
        return found
    finally:
        await conn.close()


def metric(text: str, name: str, label: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def health_last_sequence(stack: Any) -> int:
    nc = await stack.nats_connect()
    try:
        info = await nc.jetstream().stream_info("HEALTH")
        return int(info.state.last_seq)
    finally:
        await nc.close()


def main() -> None:
    from hc_common.devstack import SERVICES, Stack, free_port

    print("command: .venv/bin/python -m tests.bench tracing", flush=True)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    va_url, hr_url = PREFIX + VA_DB, PREFIX + HR_DB
    meta = load(va_url, hr_url)
    start, end = datetime.fromisoformat(meta["start"]), datetime.fromisoformat(meta["end"])
    window = timedelta(minutes=WINDOW_MINUTES)

    # Persons the last run turned yellow are green again (the apply case needs green ones).
    async def reset() -> None:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_url(hr_url))
        try:
            await conn.execute(
                "UPDATE persons SET color = 'green', authority_color = 'green', "
                "version = version + 1 WHERE authority_color <> 'green'"
            )
        finally:
            await conn.close()

    asyncio.run(reset())
    run_dir = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    env = {
        "APP_ENV": "dev",
        "LOG_LEVEL": "WARNING",
        "VENUE_ADMIN_DATABASE_URL": va_url,
        "HEALTH_RECORDS_DATABASE_URL": hr_url,
    }
    stack = Stack(
        run_dir,
        ports={n: free_port() for n in SERVICES},
        nats_port=free_port(),
        env=env,
        log_to_files=True,
    )
    try:
        stack.start(300)
        hr = httpx.Client(base_url=stack.url("health-records"), timeout=120, headers=AUTHORITY)
        body = {
            "id_number": id_number_of(0),
            "from": start.isoformat().replace("+00:00", "Z"),
            "to": end.isoformat().replace("+00:00", "Z"),
            "window_minutes": WINDOW_MINUTES,
            "apply_color": None,
            "reason": "bench",
        }
        hr.post("/v1/tracing", json=body).raise_for_status()  # warm: caches, connections
        times, contacts, visits = [], 0, 0
        for _ in range(TRACES):
            started = time.perf_counter()
            answer = hr.post("/v1/tracing", json=body)
            times.append(time.perf_counter() - started)
            answer.raise_for_status()
            found = answer.json()
            contacts, visits = len(found["contacts"]), len(found["visits"])
        bare = [asyncio.run(bare_trace(va_url, start, end, window)) for _ in range(3)]
        base = statistics.median(t for t, _ in bare)
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        print(
            f"trace, {WINDOW_MINUTES}-minute window, preview (POST /v1/tracing over HTTP, "
            f"{TRACES} runs): {visits} visits, {contacts:,} contacts; p50 {p50:.2f} s, "
            f"p95 {p95:.2f} s (goal p95 < 2 s); load average after: "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )
        print(
            f"baseline: the same trace's database work alone (asyncpg, same indexes; "
            f"{bare[0][1]:,} co-present scans): {base:.2f} s; ratio p50/baseline "
            f"{p50 / base:.1f}",
            flush=True,
        )
        for plan in asyncio.run(plans(va_url, start, end, window)):
            print(plan, flush=True)

        # Apply: the narrowest window that gives at least APPLY_CONTACTS contacts.
        per_minute = SCANS_PER_VENUE_DAY / 1440
        apply_window = max(1, math.ceil(APPLY_CONTACTS / (VENUES * 2 * per_minute)))
        before = asyncio.run(health_last_sequence(stack))
        verifier = httpx.Client(base_url=stack.url("verifier"), timeout=10)
        started = time.perf_counter()
        answer = hr.post(
            "/v1/tracing",
            json={**body, "window_minutes": apply_window, "apply_color": "yellow"},
        )
        answered = time.perf_counter() - started
        answer.raise_for_status()
        changed = sum(1 for c in answer.json()["contacts"] if c["color_before"] != c["color_after"])
        last = before
        while time.perf_counter() - started < 120:
            last = asyncio.run(health_last_sequence(stack))
            if last - before >= changed:
                break
            time.sleep(0.05)
        published = time.perf_counter() - started
        while time.perf_counter() - started < 120:
            position = metric(
                verifier.get("/metrics").text, "verifier_stream_position", 'stream="HEALTH"'
            )
            if position is not None and position >= last:
                break
            time.sleep(0.05)
        applied = time.perf_counter() - started
        print(
            f"apply_color yellow, {apply_window}-minute window: {changed:,} contacts turned "
            f"yellow; answer {answered:.2f} s, their status events in the HEALTH stream after "
            f"{published:.2f} s, applied by the verifier after {applied:.2f} s (goal < 10 s)",
            flush=True,
        )
    finally:
        stack.stop()
        if os.environ.get("BENCH_TRACING_DROP"):
            asyncio.run(drop(va_url, hr_url))


async def drop(*urls: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_url(PREFIX + "postgres"))
    try:
        for url in urls:
            await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
