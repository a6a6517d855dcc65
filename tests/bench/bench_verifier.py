"""The scan's speed, against a baseline measured in the same run.

1. Throughput: wrk drives `POST /v1/verify` on a warm verifier and a bare FastAPI endpoint
   that takes the same body (same Python, uvicorn, one worker each), in interleaved rounds.
   The server under test is pinned to one core (`taskset`, core 0) and wrk to another (core
   1), with everything else (the other services, NATS, this script) off core 0: the ratio
   then means the same on any machine, instead of the load generator taking the server's
   core on a small one. The goal: the scan at >= 2.0x the bare endpoint.
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
from dataclasses import dataclass
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
# The server's own ceiling, for reference: a raw ASGI app that reads and parses the same body.
RAW_APP = """
import orjson

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    orjson.loads(body)
    answer = b'{"decision":"pass"}'
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})
"""
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
SECONDS = int(os.environ.get("BENCH_SECONDS", 6))
GOAL = 2.0
# The server under test runs alone on SERVER_CORE; wrk on LOAD_CORE; the rest anywhere else.
SERVER_CORE = 0
LOAD_CORE = 1


def tool(name: str) -> str:
    """wrk and hey come from Debian's packages; installed here when missing."""
    if shutil.which(name) is None:
        subprocess.run(["apt-get", "install", "-y", name], check=True, capture_output=True)
    return shutil.which(name) or name


# The cores this bench may use, read before it pins itself to some of them.
_CORES = sorted(os.sched_getaffinity(0))


def cores() -> list[int]:
    return list(_CORES)


def other_cores(*taken: int) -> set[int]:
    """The cores of this machine but `taken`."""
    rest = set(cores()) - set(taken)
    if not rest:
        raise SystemExit(
            f"the bench needs at least {len(taken) + 1} cores; this machine has {len(cores())}"
        )
    return rest


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` (and of its children) on `cpus` (`taskset -a -p`)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:
            pass  # a thread that ended meanwhile
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        for child in children:
            pin(int(child), cpus)


def pin_stack(stack: Stack, server: str | None, server_core: int = SERVER_CORE) -> None:
    """The process `server` of the stack alone on `server_core`; the stack's other processes
    (and this script) on the other cores."""
    rest = other_cores(server_core)
    os.sched_setaffinity(0, rest)
    for name, process in stack.processes.items():
        pin(process.pid, {server_core} if name == server else rest)


def wrk_script(body: dict[str, object], headers: dict[str, str]) -> Path:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(body))}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines))
    return script


def wrk_command(url: str, script: Path, core: int | None, seconds: int = SECONDS) -> list[str]:
    """wrk, closed loop: 32 connections, each sending its next request when answered."""
    pinning = ["taskset", "-c", str(core)] if core is not None else []
    return [*pinning, tool("wrk"), "-t1", "-c32", f"-d{seconds}s", "-s", str(script), url]


def wrk_rate(out: str) -> float:
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, f"wrk saw errors: {out}"
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One wrk run against one server: its rate, and the server's CPU per request (on a
    shared machine the rate depends on what else runs on the server's core; the CPU per
    request much less)."""

    rate: float
    cpu_us: float


def wrk(url: str, body: dict[str, object], headers: dict[str, str], server_pid: int) -> Round:
    command = wrk_command(url, wrk_script(body, headers), LOAD_CORE)
    cpu = cpu_seconds(server_pid)
    rate = wrk_rate(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    used = cpu_seconds(server_pid) - cpu
    return Round(rate, used / (rate * SECONDS) * 1e6)


def hey_fixed_rate(
    url: str, body: dict[str, object], headers: dict[str, str], rate: float
) -> tuple[float, float, int]:
    workers = 16
    command = [
        "taskset",
        "-c",
        str(LOAD_CORE),
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


def bench_stack(prefix: str) -> Stack:
    """The four services and NATS on ports of their own, logging to files (not started)."""
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    return Stack(
        run_dir,
        ports={n: free_port() for n in SERVICES},
        nats_port=free_port(),
        env={"APP_ENV": "dev", "LOG_LEVEL": "WARNING"},
        log_to_files=True,
    )


def a_scan(stack: Stack) -> tuple[dict[str, str], dict[str, object], str]:
    """A started stack's scan, as a gate keeps sending it: a member's token with
    reverse_scan (the venue's creator), a body with a real credential's QR and the venue;
    and the id number the credential is for."""
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
    return admin, {"qr": qr, "venue_id": venue_id}, id_number


def warm_up(url: str, headers: dict[str, str], body: dict[str, object]) -> None:
    """Until the verifier at `url` answers the scan 200 (its view loaded, the scan's
    credential and status in memory)."""
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, timeout=10) as client:
        while client.post("/v1/verify", headers=headers, json=body).status_code != 200:
            assert time.monotonic() < deadline, "the verifier never answered the warm-up scan"
            time.sleep(0.1)


def pinned_app(run_dir: Path, name: str, source: str, port: int) -> subprocess.Popen[bytes]:
    """`source`'s `app` under uvicorn as it ships (uvloop, httptools; the services run the same
    with their own protocol, hc_common.server) on SERVER_CORE."""
    (run_dir / f"{name}.py").write_text(source)
    command = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "uvicorn"]
    command += [f"{name}:app", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    return subprocess.Popen([*command, "--loop", "uvloop", "--http", "httptools"], cwd=run_dir)


def main() -> None:
    stack = bench_stack("bench-verifier-")
    run_dir = stack.run_dir
    bare_port, raw_port = free_port(), free_port()
    bare = pinned_app(run_dir, "bare_app", BARE_APP, bare_port)
    raw = pinned_app(run_dir, "raw_app", RAW_APP, raw_port)
    try:
        stack.start(120)
        api = {n: httpx.Client(base_url=stack.url(n), timeout=10) for n in SERVICES}
        admin, body, id_number = a_scan(stack)
        verify = stack.url("verifier") + "/v1/verify"
        bare_url = f"http://127.0.0.1:{bare_port}/v1/verify"
        warm_up(stack.url("verifier"), admin, body)
        pin_stack(stack, "verifier")
        print(
            f"pinned: the server under test (verifier, bare endpoint) on core {SERVER_CORE}, "
            f"wrk and hey on core {LOAD_CORE}, the other services, NATS and this script on "
            f"cores {sorted(other_cores(SERVER_CORE))} (taskset; {len(cores())} cores)"
        )

        baseline: list[Round] = []
        scans: list[Round] = []
        ceiling: list[Round] = []
        verifier_pid = stack.processes["verifier"].pid
        raw_url = f"http://127.0.0.1:{raw_port}/v1/verify"
        for _ in range(ROUNDS):
            baseline.append(wrk(bare_url, body, admin, bare.pid))
            scans.append(wrk(verify, body, admin, verifier_pid))
            ceiling.append(wrk(raw_url, body, admin, raw.pid))
        b = statistics.median(r.rate for r in baseline)
        v = statistics.median(r.rate for r in scans)
        b_cpu = statistics.median(r.cpu_us for r in baseline)
        v_cpu = statistics.median(r.cpu_us for r in scans)
        print(
            f"throughput (wrk -t1 -c32 -d{SECONDS}s, closed loop, {ROUNDS} interleaved rounds, "
            f"median): bare FastAPI {b:.0f} req/s, POST /v1/verify {v:.0f} req/s, "
            f"ratio {v / b:.2f}x (goal >= {GOAL:.1f}x: {'met' if v / b >= GOAL else 'NOT met'})"
        )
        print(
            f"  server CPU per request (median): bare {b_cpu:.0f} us, verify {v_cpu:.0f} us, "
            f"ratio {b_cpu / v_cpu:.2f}x (the verifier's includes shipping its access records)"
        )
        top = statistics.median(x.rate for x in ceiling)
        top_cpu = statistics.median(x.cpu_us for x in ceiling)
        print(
            f"  the server's own ceiling, a raw ASGI app parsing the same body: {top:.0f} req/s "
            f"({top / b:.2f}x the bare endpoint), {top_cpu:.0f} us of CPU per request"
        )
        print(
            f"  rounds: bare {[round(r.rate) for r in baseline]} req/s "
            f"{[round(r.cpu_us) for r in baseline]} us; "
            f"verify {[round(r.rate) for r in scans]} req/s {[round(r.cpu_us) for r in scans]} us"
        )

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
        for server in (bare, raw):
            server.terminate()
            server.wait(10)
        stack.stop()


if __name__ == "__main__":
    main()
