"""Scale-in and the access-record journal, with real processes on a stack of this module's
own (processes get stopped and killed): a verifier stopped with SIGTERM ships what its
journal holds before it exits; a journal a lost replica left is shipped by
`python -m verifier.access drain`; two verifiers never share one journal. Every record
reaches venue-admin's store exactly once."""

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hc_common.devstack import Stack, free_port, service_command
from hc_common.testing import poll
from tests.conftest import Api, own_stack
from tests.e2e.test_verifier_scan import apply, venue, verify
from tests.journeys import access_record_ids

pytestmark = pytest.mark.e2e

SCANS = 20


@pytest.fixture(scope="module")
def own() -> Iterator[tuple[Stack, Api]]:
    with own_stack("verifier-scale-in") as running:
        yield running


@pytest.fixture
def running(own: tuple[Stack, Api]) -> Iterator[tuple[Stack, Api]]:
    """The stack, and after the test NATS and the verifier running again (a test stops them)."""
    stack, api = own
    try:
        yield stack, api
    finally:
        if "nats" not in stack.processes:
            stack.nats_url = None
            stack.start_nats()
        if "verifier" not in stack.processes:
            stack.start_service("verifier")
        stack.wait_ready(60, ["verifier"])


def journal_of(stack: Stack) -> Path:
    """The stack's verifier's journal directory (DATA_DIR/access-spool)."""
    return stack.data_dir / "access-spool"


def unshipped_ids(journal: Path) -> list[str]:
    """The ids of the records in `journal` past each segment's shipped offset, read as the
    journal's files are laid out (access/spool.py): `<id> <json>` lines, offsets beside."""
    ids = []
    for segment in sorted(journal.glob("*.log")):
        offset_file = segment.with_suffix(".offset")
        offset = int(offset_file.read_text() or 0) if offset_file.exists() else 0
        for line in segment.read_bytes()[offset:].splitlines():
            ids.append(line.split(b" ", 1)[0].decode())
    return ids


def scans_while_nats_is_down(stack: Stack, api: Api) -> tuple[str, dict[str, str], list[str]]:
    """A venue, and `SCANS` scans at it made while NATS is stopped: their record ids, which
    are then in the verifier's journal and nowhere else."""
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    assert verify(api, admin, credential["qr"], venue_id).json()["decision"] == "pass"  # warm
    assert poll(lambda: not unshipped_ids(journal_of(stack)), 30), "the warm-up scan shipped"
    stack.stop_process("nats")
    record_ids = []
    for _ in range(SCANS):
        answer = verify(api, admin, credential["qr"], venue_id)
        assert answer.status_code == 200, answer.text  # answered without the bus
        record_ids.append(answer.json()["record_id"])
    return venue_id, admin, record_ids


def stored_once(api: Api, venue_id: str, admin: dict[str, str], wanted: set[str]) -> None:
    """Every record of `wanted` is in venue-admin's access records of the venue (the warm-up
    scan's besides), each exactly once."""

    def stored() -> list[str] | None:
        records = access_record_ids(api.venue_admin, venue_id, admin)
        return records if wanted <= set(records) else None

    records = poll(stored, timeout=30)
    assert records is not None, "every access record is stored at venue-admin"
    assert len(records) == len(wanted) + 1  # and the warm-up scan's
    assert len(set(records)) == len(records)  # none stored twice


def test_sigterm_ships_the_journal_before_the_verifier_exits(running) -> None:
    stack, api = running
    venue_id, admin, record_ids = scans_while_nats_is_down(stack, api)
    journal = journal_of(stack)
    assert set(record_ids) <= set(unshipped_ids(journal)), "the records wait in the journal"

    # Scale-in: SIGTERM with the records still in the journal, then the bus comes back while
    # the verifier is stopping (within VERIFIER_SHUTDOWN_SHIP_SECONDS).
    log = stack.run_dir / "logs" / "verifier.log"
    logged_before = log.stat().st_size
    verifier = stack.processes.pop("verifier")
    os.killpg(verifier.pid, signal.SIGTERM)
    stack.nats_url = None
    stack.start_nats()
    # A graceful exit: uvicorn, once shut down, raises the SIGTERM it caught again.
    assert verifier.wait(30) in (0, -signal.SIGTERM)
    with log.open("rb") as handle:
        handle.seek(logged_before)
        logged = handle.read()
    assert b"Application shutdown complete." in logged
    assert b"access record journal empty at stop" in logged
    assert unshipped_ids(journal) == [], "nothing left behind on the replica's volume"

    stored_once(api, venue_id, admin, set(record_ids))


def test_drain_ships_the_journal_a_lost_replica_left(running) -> None:
    stack, api = running
    venue_id, admin, record_ids = scans_while_nats_is_down(stack, api)
    # The replica is lost (SIGKILL: no stop, nothing shipped) and never comes back; its
    # volume is mounted elsewhere for the drain.
    stack.stop_process("verifier", signal.SIGKILL)
    lost = stack.run_dir / "lost-replica" / "access-spool"
    shutil.move(journal_of(stack), lost)
    assert set(record_ids) <= set(unshipped_ids(lost))
    stack.nats_url = None
    stack.start_nats()
    stack.start_service("verifier")  # a new replica, with a journal of its own
    stack.wait_ready(60, ["verifier"])

    drained = drain(stack, lost)
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert f"shipped {SCANS} access records" in drained.stdout
    assert "left: 0 records (0 bytes)" in drained.stdout
    assert unshipped_ids(lost) == []
    stored_once(api, venue_id, admin, set(record_ids))

    again = drain(stack, lost)  # safe to repeat: nothing left, nothing sent
    assert again.returncode == 0 and "shipped 0 access records" in again.stdout
    stored_once(api, venue_id, admin, set(record_ids))


def test_a_journal_held_by_a_live_verifier_is_refused(running) -> None:
    stack, api = running
    live = stack.processes["verifier"]
    held = (
        f"access record journal {journal_of(stack)} is in use by another process (pid {live.pid})"
    )

    refused = drain(stack, journal_of(stack))
    assert refused.returncode == 1
    assert held in refused.stderr

    # A second verifier process on the same DATA_DIR: it exits non-zero, saying why.
    second = subprocess.run(
        service_command("verifier", free_port()),
        env=stack.service_env("verifier"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert held in second.stdout + second.stderr

    # And the live one went on as before: it scans, and its records are shipped.
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    answer = verify(api, admin, credential["qr"], venue_id)
    assert answer.status_code == 200 and live.poll() is None
    assert poll(lambda: not unshipped_ids(journal_of(stack)), 30)


def drain(stack: Stack, journal: Path) -> subprocess.CompletedProcess[str]:
    """`python -m verifier.access drain` with the verifier's environment."""
    return subprocess.run(
        [sys.executable, "-m", "verifier.access", "drain", str(journal), "--timeout", "60"],
        env=stack.service_env("verifier"),
        capture_output=True,
        text=True,
        timeout=90,
    )
