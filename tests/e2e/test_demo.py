"""`make demo` as a newcomer runs it: first with nothing running (a clear error), then against
a fresh `make run` (a run of this module's own: ports, run directory, databases), twice (new
phone numbers each run, so the one-code-a-minute limit does not stop the second), and one of
the curl commands it prints pasted into bash as printed."""

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from hc_common.devstack import SERVICES, free_port
from tests.e2e.test_quickstart import DevRun, dev_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def make_demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def printed(output: str, label: str) -> str:
    """The value after `label` in the demo's summary (`  venue_id         01...`)."""
    match = re.search(rf"^\s+{re.escape(label)}\s+(\S+)", output, re.M)
    assert match, (label, output)
    return match.group(1)


def command_after(output: str, comment: str) -> str:
    """The command printed on the line after the `# comment` line that starts with `comment`."""
    lines = output.splitlines()
    (index,) = [i for i, line in enumerate(lines) if line.startswith("# " + comment)]
    return lines[index + 1]


def test_with_nothing_running_it_says_to_start_the_system_first() -> None:
    ports = ",".join(f"{name}={free_port()}" for name in SERVICES)
    done = make_demo({**os.environ, "HC_PORTS": ports})
    assert done.returncode != 0
    assert "Nothing answers at http://127.0.0.1:" in done.stderr
    assert "make run" in done.stderr
    assert "Traceback" not in done.stderr


def test_it_seeds_a_fresh_run_twice_and_its_commands_work_as_printed(tmp_path: Path) -> None:
    with dev_run("demo") as run:
        env = {**os.environ, "HC_PORTS": run.env["HC_PORTS"]}
        first = make_demo(env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        out = first.stdout
        check_summary(run, out)

        # The printed gate scan, pasted into bash as it is.
        scan = command_after(out, "A gate scans")
        pasted = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", scan],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pasted.returncode == 0, pasted.stderr
        answer = json.loads(pasted.stdout)
        assert answer["open"] is True and answer["decision"] == "pass", answer
        assert answer["lines"][-1] == "通行"

        # The printed device-token request, too.
        token = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command_after(out, "A new device token")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(token.stdout)["expires_in"] == 86400

        # A second run right after: new people and a new venue, not held up by the limits.
        second = make_demo(env)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert printed(second.stdout, "phone") != printed(out, "phone")
        assert printed(second.stdout, "venue_id") != printed(out, "venue_id")


def check_summary(run: DevRun, out: str) -> None:
    """The summary names what it made, and what it names is there."""
    family_phone = printed(out, "phone")
    admin_phone = printed(out, "main admin")
    sub_admin_phone = printed(out, "sub-admin")
    for phone in (family_phone, admin_phone, sub_admin_phone):
        assert re.fullmatch(r"1\d{10}", phone), phone
    assert len({family_phone, admin_phone, sub_admin_phone}) == 3

    credentials = re.findall(r"^\s+credential\s+(\S+)\s+(\S+), (\d+), (\w+)$", out, re.M)
    assert [c[3] for c in credentials] == ["grandparent", "child"], out
    assert int(credentials[0][2]) >= 70 and int(credentials[1][2]) < 16
    assert all(re.fullmatch(r".\*.", c[1]) for c in credentials), credentials

    venue_id = printed(out, "venue_id")
    device_id = printed(out, "device_id")
    device_secret = printed(out, "device_secret")
    assert "2 NAT results" in out and "5 vaccinations" in out
    assert f"{run.url('verifier')}/scan/" in out
    for name in SERVICES:
        assert f"{run.url(name)}/docs" in out
    assert "docs/api.md" in out and "docs/quickstart.md" in out

    # What it names exists: the sub-admin is a member of the venue with reverse_scan, the
    # device's id and secret get a token, the family's credentials are active.
    venue_admin = httpx.Client(base_url=run.url("venue-admin"), timeout=10)
    token = venue_admin.post(
        "/v1/devices/token", json={"device_id": device_id, "device_secret": device_secret}
    )
    assert token.status_code == 200, token.text
    admin_token = re.search(r"access-records -H 'Authorization: Bearer ([^']+)'", out)
    assert admin_token, out
    members = venue_admin.get(
        f"/v1/venues/{venue_id}/members",
        headers={"Authorization": f"Bearer {admin_token.group(1)}"},
    ).json()["items"]
    roles = {m["masked_phone"]: (m["role"], m["permissions"]) for m in members}
    assert roles == {
        f"{admin_phone[:3]}****{admin_phone[-4:]}": ("main_admin", ["reverse_scan"]),
        f"{sub_admin_phone[:3]}****{sub_admin_phone[-4:]}": ("sub_admin", ["reverse_scan"]),
    }
    card = re.search(r"card\.pdf -H 'Authorization: Bearer ([^']+)'", out)
    assert card, out
    family = httpx.Client(
        base_url=run.url("issuer"),
        headers={"Authorization": f"Bearer {card.group(1)}"},
        timeout=10,
    )
    listed = family.get("/v1/family/credentials").json()["items"]
    assert sorted((c["credential_id"], c["status"]) for c in listed) == sorted(
        (c[0], "active") for c in credentials
    )
