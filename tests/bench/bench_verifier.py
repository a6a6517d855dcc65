"""The scan's speed, against a baseline measured in the same run.

1. Throughput: wrk drives `POST /v1/verify` on a warm verifier and a bare FastAPI endpoint
   that takes the same body (same Python, uvicorn, one worker each), in interleaved rounds.
2. Latency at a fixed rate of half the baseline's throughput: `hey -q` (rate-limited
   workers; wrk2 is not in Debian), p50 and p99.
3. Freshness: the time from `POST /v1/codes` at health-records to the verifier answering
   with the new colour, over 200 changes.
4. Memory: bytes of one cached status and one cached credential (tracemalloc).

    .venv/bin/python -m tests.bench verifier      # BENCH_ROUNDS, BENCH_SECONDS to change
"""

import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

from hc_common.devstack import SERVICES, Stack, free_port
from hc_common.testing import make_id_number, make_phone
from tests.journeys import AUTHORITY, apply_for, sign_in

BARE_APP = """
from fastapi import FastAPI
from pydantic import BaseModel

class Body(BaseModel):
    qr: str
    venue_id: str | None = None

app = FastAPI()

@app.post("/v1/verify")
async def verify(body: Body) -> dict:
    return {"decision": "pass"}
"""
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
SECONDS = int(os.environ.get("BENCH_SECONDS", 6))


def tool(name: str) -> str:
    """wrk and hey come from Debian's packages; installed here when missing."""
    if shutil.which(name) is None:
        subprocess.run(["apt-get", "install", "-y", name], check=True, capture_output=True)
    return shutil.which(name) or name


def wrk(url: str, body: dict[str, object], headers: dict[str, str]) -> float:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(body))}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines))
    command = [tool("wrk"), "-t1", "-c32", f"-d{SECONDS}s", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, f"wrk saw errors: {out}"
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def hey_fixed_rate(
    url: str, body: dict[str, object], headers: dict[str, str], rate: float
) -> tuple[float, float, int]:
    workers = 16
    command = [
        tool("hey"),
        "-z",
        f"{SECONDS}s",
        "-c",
        str(workers),
        "-q",
        f"{rate / workers:.1f}",
        "-m",
        "POST",
        "-T",
        "application/json",
        "-d",
        json.dumps(body),
    ]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"\[200\]\s+(\d+) responses", out).group(1))  # type: ignore[union-attr]
    return p50 * 1000, p99 * 1000, done


def percentile(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))]


def memory_per_entry() -> tuple[float, float]:
    """Bytes one cached status and one cached credential take in the verifier's view."""
    from hc_common.ids import new_id
    from verifier.scan.decision import HealthStatus
    from verifier.view.state import CredentialInfo, ScanView

    n = 50_000
    now = datetime.datetime.now(datetime.UTC)
    view = ScanView(status_capacity=n, credential_capacity=n)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        view.apply_status(HealthStatus(new_id(), "green", "negative", now, 3, now, 12))
    statuses = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        view.apply_credential(
            CredentialInfo(
                new_id(), new_id(), 1, "active", "李*华", "450103********1234", now.date(), now
            )
        )
    credentials = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (statuses - before) / n, (credentials - statuses) / n


def main() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="bench-verifier-"))
    stack = Stack(
        run_dir,
        ports={n: free_port() for n in SERVICES},
        nats_port=free_port(),
        env={"APP_ENV": "dev", "LOG_LEVEL": "WARNING"},
        log_to_files=True,
    )
    (run_dir / "bare_app.py").write_text(BARE_APP)
    bare_port = free_port()
    bare = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(bare_port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=run_dir,
    )
    try:
        stack.start(120)
        api = {n: httpx.Client(base_url=stack.url(n), timeout=10) for n in SERVICES}
        family = sign_in(api["issuer"], make_phone())
        id_number = make_id_number(datetime.date(1950, 3, 8))
        qr = apply_for(api["issuer"], family, id_number).json()["qr"]
        admin = sign_in(api["issuer"], make_phone())
        venue_id = (
            api["venue-admin"]
            .post(
                "/v1/venues",
                headers=admin,
                json={"name": "站", "category": "metro", "address": "a", "region_code": "450103"},
            )
            .json()["venue_id"]
        )
        body = {"qr": qr, "venue_id": venue_id}
        verify = stack.url("verifier") + "/v1/verify"
        bare_url = f"http://127.0.0.1:{bare_port}/v1/verify"
        deadline = time.monotonic() + 10
        while api["verifier"].post("/v1/verify", headers=admin, json=body).status_code != 200:
            assert time.monotonic() < deadline, "the verifier never answered the warm-up scan"
            time.sleep(0.1)

        baseline, scans = [], []
        for _ in range(ROUNDS):
            baseline.append(wrk(bare_url, body, admin))
            scans.append(wrk(verify, body, admin))
        b, v = statistics.median(baseline), statistics.median(scans)
        print(
            f"throughput (wrk -t1 -c32 -d{SECONDS}s, {ROUNDS} interleaved rounds, median): "
            f"bare FastAPI {b:.0f} req/s, POST /v1/verify {v:.0f} req/s, ratio {v / b:.2f}"
        )
        print(f"  rounds: bare {[round(x) for x in baseline]}, verify {[round(x) for x in scans]}")

        rate = b / 2
        p50, p99, done = hey_fixed_rate(verify, body, admin, rate)
        bp50, bp99, _ = hey_fixed_rate(bare_url, body, admin, rate)
        print(
            f"latency at {rate:.0f} req/s (hey -q, {SECONDS}s, {done} scans): "
            f"verify p50 {p50:.2f} ms, p99 {p99:.2f} ms; bare p50 {bp50:.2f} ms, "
            f"p99 {bp99:.2f} ms"
        )

        visible = []
        for i in range(200):
            color = "yellow" if i % 2 == 0 else "green"
            started = time.perf_counter()
            changed = api["health-records"].post(
                "/v1/codes",
                headers=AUTHORITY,
                json={"id_number": id_number, "color": color, "reason": "bench"},
            )
            assert changed.status_code == 200
            while (
                api["verifier"]
                .post("/v1/verify", headers=admin, json=body)
                .json()["health"]["color"]
                != color
            ):
                assert time.perf_counter() - started < 10, "change never reached the verifier"
            visible.append((time.perf_counter() - started) * 1000)
        print(
            f"status change -> verifier answer (200 changes, POST /v1/codes included): "
            f"p50 {percentile(visible, 0.5):.1f} ms, p99 {percentile(visible, 0.99):.1f} ms"
        )

        status_bytes, credential_bytes = memory_per_entry()
        print(
            f"memory (tracemalloc, 50,000 entries): {status_bytes:.0f} B per cached status, "
            f"{credential_bytes:.0f} B per cached credential"
        )
    finally:
        bare.terminate()
        bare.wait(10)
        stack.stop()


if __name__ == "__main__":
    main()
