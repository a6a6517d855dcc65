"""A normal start of the stack raises no alarm about key sets: venue-admin and the verifier
fetch the issuer's and venue-admin's key sets while those may still be starting, which is
logged at info level and tried again, never as a warning. Any line about a key set names the
absolute URL it tried (host included).

Reads the log files of the session's stack (its run dir), whatever ran on it before."""

import json
from typing import Any

import pytest

from hc_common.devstack import SERVICES, Stack

pytestmark = pytest.mark.e2e

ALARMS = {"warning", "error", "critical"}


def log_lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    path = stack.run_dir / "logs" / f"{name}.log"
    lines = []
    for raw in path.read_text().splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # not a line of ours (a library writing to stderr)
        if isinstance(entry, dict):
            lines.append(entry)
    return lines


def test_a_normal_start_logs_no_warning_about_key_sets(stack: Stack) -> None:
    logs = {name: log_lines(stack, name) for name in SERVICES}
    # The files are the services' own: each logged its start.
    for name, lines in logs.items():
        assert any(line.get("service") == name for line in lines), name
    about_keys = [
        (name, line)
        for name, lines in logs.items()
        for line in lines
        if "key set" in str(line.get("msg", ""))
    ]
    alarms = [(name, line) for name, line in about_keys if line.get("level") in ALARMS]
    assert alarms == []
    own = {f"{stack.url(name)}/.well-known/jwks.json" for name in ("issuer", "venue-admin")}
    for name, line in about_keys:
        assert line.get("url") in own, (name, line)
