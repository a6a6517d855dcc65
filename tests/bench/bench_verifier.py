"""POST /v1/verify on a warm cache vs. a bare FastAPI endpoint taking the same body (same
Python, uvicorn, one worker each, interleaved wrk rounds); p50/p99 at half the baseline's
rate (an asyncio open-loop client: wrk2 is not in Debian); status change -> verifier answer."""

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from hc_common.devstack import SERVICES, Stack, free_port
from hc_common.testing import make_id_number, make_phone
from tests.e2e.test_slice import AUTHORITY, PHOTO_PNG, sign_in

BARE = '''
from fastapi import FastAPI
from pydantic import BaseModel
class Body(BaseModel):
    qr: str
    venue_id: str | None = None
app = FastAPI()
@app.post("/v1/verify")
async def verify(body: Body) -> dict:
    return {"decision": "pass"}
'''
ROUNDS, SECONDS = int(os.environ.get("BENCH_ROUNDS", 3)), int(os.environ.get("BENCH_SECONDS", 8))


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def wrk(url: str, body: dict, headers: dict[str, str]) -> float:
    script = Path(tempfile.mktemp(suffix=".lua"))
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines))
    out = subprocess.run([ensure_wrk(), "-t1", "-c32", f"-d{SECONDS}s", "-s", str(script), url],
                         capture_output=True, text=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


async def open_loop(url: str, body: dict, headers: dict[str, str], rate: float,
                    seconds: float) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(headers=headers, limits=httpx.Limits(max_connections=200)) as c:
        async def one() -> None:
            started = time.perf_counter()
            response = await c.post(url, json=body)
            assert response.status_code == 200
            latencies.append(time.perf_counter() - started)
        tasks, start = [], time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1000


def main() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="bench-verifier-"))
    stack = Stack(run_dir, ports={n: free_port() for n in SERVICES}, nats_port=free_port(),
                  env={"APP_ENV": "dev"}, log_to_files=True)
    bare_file = run_dir / "bare_app.py"
    bare_file.write_text(BARE)
    bare_port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--port",
                             str(bare_port), "--no-access-log", "--log-level", "warning"],
                            cwd=run_dir)
    try:
        stack.start(90)
        api = {n: httpx.Client(base_url=stack.url(n), timeout=10) for n in SERVICES}
        family = sign_in(api["issuer"], make_phone())
        id_number = make_id_number(__import__("datetime").date(1950, 3, 8))
        face = api["issuer"].post("/dev/face-checks", json={"name": "李秀华", "id_number": id_number})
        qr = api["issuer"].post("/v1/family/credentials", headers=family, json={
            "name": "李秀华", "id_number": id_number, "relationship": "grandparent",
            "photo": PHOTO_PNG, "face_check_token": face.json()["face_check_token"]}).json()["qr"]
        admin = sign_in(api["issuer"], make_phone())
        venue_id = api["venue-admin"].post("/v1/venues", headers=admin, json={
            "name": "站", "category": "metro", "address": "a", "region_code": "450103"}
        ).json()["venue_id"]
        body = {"qr": qr, "venue_id": venue_id}
        assert api["verifier"].post("/v1/verify", headers=admin, json=body).json()[
            "decision"] == "pass"
        verifier_url = stack.url("verifier") + "/v1/verify"
        bare_url = f"http://127.0.0.1:{bare_port}/v1/verify"
        base, ver = [], []
        for _ in range(ROUNDS):
            base.append(wrk(bare_url, body, admin))
            ver.append(wrk(verifier_url, body, admin))
        b, v = statistics.median(base), statistics.median(ver)
        print(f"wrk -t1 -c32 -d{SECONDS}s x{ROUNDS} interleaved: bare {b:.0f} req/s, "
              f"verifier {v:.0f} req/s, ratio {v / b:.2f}")
        rate = b / 2
        lat = asyncio.run(open_loop(verifier_url, body, admin, rate, SECONDS))
        print(f"open loop at {rate:.0f} req/s (asyncio client): p50 {pct(lat, .5):.2f} ms, "
              f"p99 {pct(lat, .99):.2f} ms")
        visible = []
        for i in range(200):
            color = "yellow" if i % 2 == 0 else "green"
            started = time.perf_counter()
            api["health-records"].post("/v1/codes", headers=AUTHORITY, json={
                "id_number": id_number, "color": color, "reason": "bench"})
            while api["verifier"].post("/v1/verify", headers=admin, json=body).json()[
                    "health"]["color"] != color:
                pass
            visible.append(time.perf_counter() - started)
        print(f"status change -> verifier answer over 200 changes: p50 {pct(visible, .5):.1f} ms, "
              f"p99 {pct(visible, .99):.1f} ms")
    finally:
        bare.terminate()
        bare.wait(10)
        stack.stop()


if __name__ == "__main__":
    main()
