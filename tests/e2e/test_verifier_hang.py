"""A service behind the verifier hangs: its process is frozen (SIGSTOP), so it accepts
connections and never answers. The contract: a scan is still answered within 2 seconds (the
verifier's upstream budget, 1.5 s by default), under the rules for an unreachable owner.

A stack of this module's own (processes are frozen and restarted). The failure criterion is
the scan client's 5-second time-out: an answer that does not come fails the test. The time
each answer took is printed (`pytest -s`), not asserted (a loaded machine is slow)."""

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hc_common.devstack import Stack
from hc_common.ids import new_id
from hc_common.testing import poll
from tests.conftest import Api, own_stack
from tests.e2e.test_verifier_scan import EVENTS, apply, venue

pytestmark = pytest.mark.e2e

# The scan client's time-out: an answer later than this is a hang (the contract says 2 s).
ANSWER_WITHIN = 5.0


@pytest.fixture(scope="module")
def own() -> Iterator[tuple[Stack, Api]]:
    with own_stack("verifier-hang") as running:
        yield running


@contextmanager
def frozen(stack: Stack, name: str) -> Iterator[None]:
    """The service's process stopped (SIGSTOP): its socket still accepts, nothing answers."""
    process = stack.processes[name]
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGCONT)


class Scans:
    """`POST /v1/verify` with a 5-second client time-out, each answer's time printed."""

    def __init__(self, stack: Stack) -> None:
        self.client = httpx.Client(base_url=stack.url("verifier"), timeout=ANSWER_WITHIN)

    def verify(
        self, what: str, headers: dict[str, str], qr: str, venue_id: str | None
    ) -> httpx.Response:
        body = {"qr": qr, "venue_id": venue_id} if venue_id else {"qr": qr}
        started = time.perf_counter()
        answer = self.client.post("/v1/verify", headers=headers, json=body)
        print(f"\n{what}: {answer.status_code} in {time.perf_counter() - started:.3f} s")
        return answer


def test_health_records_frozen_known_is_stale_unknown_is_manual_check(own) -> None:
    stack, api = own
    scans = Scans(stack)
    venue_id, admin = venue(api)
    known, _ = apply(api)
    unknown, _ = apply(api)  # issued, its status never asked for
    first = scans.verify("before", admin, known["qr"], venue_id).json()
    assert first["decision"] == "pass" and first["stale"] is False
    with frozen(stack, "health-records"):
        # Once the verifier's probe has found health-records not answering, the status it
        # holds is used, marked stale (until then it is current).
        def stale() -> dict | None:
            answer = scans.verify("health-records frozen, cached", admin, known["qr"], venue_id)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            return body if body["stale"] else None

        body = poll(stale, EVENTS)
        assert body is not None, "the cached status is marked stale"
        assert body["decision"] == "pass" and body["health"]["color"] == "green"
        # Not in memory: asked for, no answer within the budget, no status.
        answer = scans.verify("health-records frozen, not cached", admin, unknown["qr"], venue_id)
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "manual_check"
        assert answer.json()["reasons"] == ["status_unavailable"]
        assert answer.json()["health"] is None and answer.json()["stale"] is False
    assert poll(
        lambda: scans.verify("thawed", admin, unknown["qr"], venue_id).json()["decision"] == "pass",
        EVENTS,
    )
    assert poll(
        lambda: scans.verify("thawed", admin, known["qr"], venue_id).json()["stale"] is False,
        EVENTS,
    )


def _foreign_token() -> dict[str, str]:
    """A bearer token signed by a key no service publishes: its kid is unknown, so the
    verifier fetches the key sets before it refuses it."""
    claims = {"sub": new_id(), "aud": "hc", "exp": int(time.time()) + 600}
    token = jwt.encode(
        claims,
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "k" + uuid.uuid4().hex[:12]},
    )
    return {"Authorization": f"Bearer {token}"}


def test_issuer_frozen_a_credential_not_in_memory_is_not_passed(own) -> None:
    stack, api = own
    scans = Scans(stack)
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    assert scans.verify("before", admin, credential["qr"], venue_id).json()["decision"] == "pass"
    # A verifier started afresh holds no credential issued before it started (it follows the
    # issuer's stream from its start): the next scan of this one asks the issuer.
    stack.stop_process("verifier")
    stack.start_service("verifier")
    stack.wait_ready(60, ["verifier"])
    log = stack.run_dir / "logs" / "verifier.log"
    failed_fetches = log.read_text().count("key set fetch failed")
    with frozen(stack, "issuer"):
        answer = scans.verify(
            "issuer frozen, credential not cached", admin, credential["qr"], venue_id
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["decision"], body["reasons"]) == ("manual_check", ["status_unavailable"])
        assert body["holder"] is None and body["health"] is None

        # A token of a key not known: once a key-set fetch is due (at most 5 s after the
        # last), the verifier asks the frozen issuer; the scan is refused all the same, in
        # time, and the fetch, left to run on, ends in the client's time-out (logged).
        def fetch_failed() -> bool:
            refused = scans.verify(
                "issuer frozen, unknown kid", _foreign_token(), credential["qr"], venue_id
            )
            assert refused.status_code == 401, refused.text
            return log.read_text().count("key set fetch failed") > failed_fetches

        assert poll(fetch_failed, 20, interval=0.5), "the verifier asked the frozen issuer"
    assert poll(
        lambda: (
            scans.verify("thawed", admin, credential["qr"], venue_id).json()["decision"] == "pass"
        ),
        EVENTS,
    )


def test_venue_admin_frozen_a_known_staff_member_still_scans(own) -> None:
    stack, api = own
    scans = Scans(stack)
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    assert scans.verify("before", admin, credential["qr"], venue_id).json()["decision"] == "pass"
    with frozen(stack, "venue-admin"):
        answer = scans.verify("venue-admin frozen, known staff", admin, credential["qr"], venue_id)
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "pass"
        # A venue the verifier does not hold: venue-admin is asked, hangs; the snapshot is
        # the whole truth, so it is unknown (404).
        unknown = scans.verify(
            "venue-admin frozen, unknown venue", admin, credential["qr"], new_id()
        )
        assert unknown.status_code == 404, unknown.text
    assert poll(
        lambda: (
            httpx.get(stack.url("venue-admin") + "/readyz", timeout=ANSWER_WITHIN).status_code
            == 200
        ),
        EVENTS,
    )
    assert scans.verify("thawed", admin, credential["qr"], venue_id).json()["decision"] == "pass"
