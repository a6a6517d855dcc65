"""docs/quickstart.md as a reader follows it: the system started as `make run` starts it
(`python -m hc_common.devstack`, on ports, a run directory and databases of this module's),
then every ```sh block of the guide run in order, exactly as written, in one
`bash -euo pipefail`, and what the guide says the reader sees checked in what it printed."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hc_common.devstack import SERVICES, free_port
from hc_common.testing import poll, test_database_url

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "quickstart.md"
STARTUP = 120  # a cold start of four services on a busy machine
MARK = "@@quickstart-step@@"
CSV_HEADER = (
    "record_id,checked_at,checked_at_local,decision,reasons,reasons_text,masked_name,color,"
    "scanner_kind,scanner_id,scanner_name"
)

# The variables the guide's first step reads, for a system that is not on 8001-8004.
GUIDE_VARIABLES = {
    "issuer": "ISSUER",
    "venue-admin": "VENUE_ADMIN",
    "health-records": "HEALTH_RECORDS",
    "verifier": "VERIFIER",
}


@dataclass
class DevRun:
    """A `make run` of a test's own (`python -m hc_common.devstack`), ready."""

    run_dir: Path
    ports: dict[str, int]
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    console: Path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def output(self) -> str:
        return self.console.read_text(errors="replace")


@contextmanager
def dev_run(name: str) -> Iterator[DevRun]:
    """`make run` on free ports with its own run directory, NATS and databases (named after
    `name`; PostgreSQL with TEST_DATABASE_URL_PREFIX); stopped as `make stop` stops it."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"hc-{name}-"))
    ports = {service: free_port() for service in SERVICES}
    env = {
        **os.environ,
        "HC_RUN_DIR": str(run_dir),
        "HC_PORTS": ",".join(f"{service}={port}" for service, port in ports.items()),
        "HC_NATS_PORT": str(free_port()),
    }
    env.pop("NATS_URL", None)  # the run's own embedded NATS, always
    for service, (_package, prefix) in SERVICES.items():
        if service != "verifier":  # it keeps no database
            env[f"{prefix}_DATABASE_URL"] = test_database_url(f"{name}-{service}", run_dir)
    console = run_dir / "console.log"
    with open(console, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hc_common.devstack"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = DevRun(run_dir, ports, env, process, console)
    try:
        poll(lambda: "Ready in" in run.output() or process.poll() is not None, STARTUP)
        assert "Ready in" in run.output(), run.output()[-3000:]
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(
            [sys.executable, "-m", "hc_common.devstack", "stop"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=120,
        )


def guide_steps(markdown: str) -> list[tuple[str, str]]:
    """Each ```sh block of the guide with the heading it stands under, in order."""
    steps = []
    heading = ""
    for match in re.finditer(r"^## ([^\n]+)$|^```sh\n(.*?)^```$", markdown, re.M | re.S):
        if match.group(1) is not None:
            heading = match.group(1).strip()
        else:
            steps.append((heading, match.group(2)))
    return steps


def json_lines(text: str) -> list[Any]:
    """The JSON documents a step printed: one a line, or one pretty-printed over many."""
    found: list[Any] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("{") and line.rstrip().endswith("}"):
            found.append(json.loads(line))
        elif line == "{":  # python3 -m json.tool: up to the closing brace at column 0
            end = lines.index("}", i)
            found.append(json.loads("\n".join(lines[i : end + 1])))
            i = end
        i += 1
    return found


def test_every_step_of_the_quickstart_runs_as_written_and_shows_what_it_says(
    tmp_path: Path,
) -> None:
    steps = guide_steps(GUIDE.read_text(encoding="utf-8"))
    assert len(steps) >= 10, [heading for heading, _ in steps]
    # The guide's own blocks, untouched, with a marker echoed between them so that each
    # step's output can be told apart; then the ids the test reads the records with.
    script = "".join(f"echo {shlex.quote(f'{MARK} {h}')}\n{block}" for h, block in steps)
    script += f"echo '{MARK} (test)'\necho \"$VENUE_ID $ADMIN_TOKEN\"\n"
    (tmp_path / "quickstart.sh").write_text(script, encoding="utf-8")

    with dev_run("quickstart") as run:
        env = {**os.environ, **{var: run.url(svc) for svc, var in GUIDE_VARIABLES.items()}}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "quickstart.sh"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        parts = done.stdout.split(MARK + " ")[1:]
        said = {part.partition("\n")[0]: part.partition("\n")[2] for part in parts}
        assert len(said) == len(steps) + 1, list(said)

        def step(number: int) -> str:
            (heading,) = [h for h in said if h.startswith(f"{number}. ")]
            return said[heading]

        assert json_lines(step(1))[0]["status"] == "ready"
        assert json_lines(step(2)) == [{"expires_in": 300}]

        (credential,) = json_lines(step(4))
        assert credential["status"] == "active"
        assert credential["holder"]["masked_name"] == "李*华"
        assert credential["holder"]["masked_id_number"] == "450103********2020"
        assert credential["holder"]["age"] >= 72
        assert credential["qr"].startswith("GXHC1:")

        assert (tmp_path / "card.pdf").read_bytes().startswith(b"%PDF-")
        assert (tmp_path / "card-a4.pdf").read_bytes().startswith(b"%PDF-")
        assert (tmp_path / "qr.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

        assert "venue: " in step(6)
        rule, batch = json_lines(step(7))
        assert rule == {
            "allowed_colors": ["green"],
            "max_nat_age_hours": 72,
            "min_vaccine_doses": 0,
        }
        assert batch == {"accepted": 1, "duplicates": 0, "rejected": []}

        (gate,) = json_lines(step(9))
        assert gate["open"] is True and gate["decision"] == "pass" and gate["color"] == "green"
        assert gate["lines"] == ["李*华", "绿码", "核酸阴性 20小时", "通行"]

        (staff,) = json_lines(step(10))
        assert staff["decision"] == "pass" and staff["reasons"] == [] and staff["stale"] is False
        assert staff["holder"]["masked_name"] == "李*华"
        assert staff["health"]["color"] == "green"
        assert staff["health"]["nat"]["result"] == "negative"
        assert staff["health"]["nat"]["hours_since_sample"] == 20
        assert staff["health"]["vaccination"] is None

        status, denied = json_lines(step(11))
        assert status["color"] == "yellow"
        assert denied["open"] is False and denied["decision"] == "deny"
        assert denied["color"] == "yellow"
        assert denied["lines"][0] == "李*华" and denied["lines"][-1] == "禁止通行"

        # What the guide printed of the access records: the scans' own, newest first.
        scans = [denied["record_id"], staff["record_id"], gate["record_id"]]
        (page,) = json_lines(step(12))
        shown = [item["record_id"] for item in page["items"]]
        assert shown == [r for r in scans if r in shown], (shown, scans)
        csv = (tmp_path / "access-records.csv").read_bytes()
        assert csv.startswith(b"\xef\xbb\xbf" + CSV_HEADER.encode() + b"\r\n"), csv[:200]
        rows = [line.split(",") for line in csv.decode("utf-8-sig").splitlines()[1:]]
        assert [row[0] for row in rows] == [r for r in scans if r in [row[0] for row in rows]]
        assert all(row[6] == "李*华" for row in rows), rows
        assert "\n" + CSV_HEADER + "\n" in step(12)

        # Every scan reaches the venue's records (within seconds): all three, as the guide
        # says, the deny first with its reason.
        venue_id, admin_token = said["(test)"].split()
        records = httpx.Client(
            base_url=run.url("venue-admin"), headers={"Authorization": f"Bearer {admin_token}"}
        )

        def all_three() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = records.get(
                f"/v1/venues/{venue_id}/access-records"
            ).json()["items"]
            return items if len(items) == 3 else []

        items = poll(all_three, 10)
        assert [item["record_id"] for item in items] == scans
        assert [item["decision"] for item in items] == ["deny", "pass", "pass"]
        assert items[0]["reasons"] == ["color_yellow"] and items[0]["color"] == "yellow"
        assert [item["scanner"]["kind"] for item in items] == ["device", "user", "device"]
