"""One time budget for all upstream calls of a scan: an upstream that accepts the request and
never answers (a frozen process) costs a scan at most the budget, and the scan is answered
under the rules for an unreachable owner (`manual_check` without a status, the last status
marked stale, venue-admin's snapshot from memory, 401 for a token whose key is unknown).

The upstreams are the conftest's fakes behind a transport that can freeze one of them: a
frozen service's requests wait until the test ends. httpx's own time-outs do not apply to a
mock transport, so only the scan's budget can end such a wait. No assertion on speed: each
answer must come within an outer limit far above the budget (a hang never comes), and say
the right thing."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from hc_common.errors import DomainError
from hc_common.testing import eventually
from verifier.scan.decision import HealthStatus
from verifier.scan.service import ScanResult

from .conftest import (
    Upstreams,
    Verifier,
    an_id,
    build_verifier,
    credential,
    device,
    key_ring,
    member,
    rule,
    status,
)

# Small, so that the tests are quick; the outer limit is far above it (a loaded machine is
# slow, a hang is forever).
BUDGET = 0.3
OUTER = BUDGET + 10

VENUE, OTHER = an_id("venue-1"), an_id("venue-unknown")
STAFF = an_id("user-staff")
GATE, NEW_GATE = an_id("device-gate"), an_id("device-new")
CRED, SUBJ = an_id("cred-1"), an_id("subj-1")

T = TypeVar("T")


@dataclass
class Freezer:
    """Which upstreams are frozen: their requests are taken and answered only on `thaw`."""

    frozen: set[str] = field(default_factory=set)
    thaw: asyncio.Event = field(default_factory=asyncio.Event)
    hung: list[str] = field(default_factory=list)  # requests that reached a frozen service

    def client(self, upstreams: Upstreams, name: str) -> httpx.AsyncClient:
        async def handle(request: httpx.Request) -> httpx.Response:
            upstreams.requests.append(f"{name} {request.url.path}")
            if name in self.frozen:
                self.hung.append(f"{name} {request.url.path}")
                await self.thaw.wait()
            return upstreams._answer(name, request)

        return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url=f"http://{name}")


@pytest.fixture
async def freezer() -> AsyncIterator[Freezer]:
    freezer = Freezer()
    yield freezer
    freezer.thaw.set()  # what still waits (a key-set fetch left to run on) ends


@pytest.fixture
def make(tmp_path: Path, freezer: Freezer) -> Callable[[Upstreams], Verifier]:
    """The conftest's verifier, on freezable upstreams and a budget of BUDGET seconds."""

    def build(upstreams: Upstreams) -> Verifier:
        return build_verifier(
            upstreams,
            tmp_path / "spool",
            client=lambda name: freezer.client(upstreams, name),
            scan_budget_seconds=BUDGET,
        )

    return build


async def answered(call: Coroutine[Any, Any, T]) -> T:
    """The call's result; a hang fails the test (TimeoutError) instead of stalling it."""
    async with asyncio.timeout(OUTER):
        return await call


async def scan(verifier: Verifier, token: str, qr: str, venue_id: str | None) -> ScanResult:
    """A scan as the router makes it: the scanner, then the scan, one budget for both."""
    service = verifier.service
    return await service.scan(await service.scanner(token), qr, venue_id)


async def refused(call: Coroutine[Any, Any, object]) -> int:
    with pytest.raises(DomainError) as caught:
        await answered(call)
    return caught.value.status


@pytest.fixture
def upstreams(upstreams: Upstreams) -> Upstreams:
    """venue-admin holding VENUE (a staff member, a gate, a green rule) in its snapshot and
    scan context (NEW_GATE only in the latter: made after the snapshot), the issuer CRED of
    SUBJ, health-records SUBJ green."""
    upstreams.snapshot_pages = [
        {
            "members": [member(VENUE, STAFF, ["reverse_scan"])],
            "devices": [device(VENUE, GATE)],
            "rules": [rule(VENUE)],
        }
    ]
    upstreams.add_venue(
        VENUE,
        members=[member(VENUE, STAFF, ["reverse_scan"])],
        devices=[device(VENUE, GATE), device(VENUE, NEW_GATE)],
    )
    upstreams.credentials[CRED] = credential(CRED, SUBJ)
    upstreams.statuses[SUBJ] = status(SUBJ, "green")
    return upstreams


@pytest.fixture
async def loaded(upstreams: Upstreams, make: Callable[[Upstreams], Verifier]) -> Verifier:
    """A verifier with venue-admin's snapshot loaded (not the credential nor the status)."""
    verifier = make(upstreams)
    await verifier.sync.load_snapshots()
    upstreams.requests.clear()
    return verifier


# --- each upstream hanging -----------------------------------------------------------------
async def test_a_hanging_issuer_leaves_a_credential_not_in_memory_status_unavailable(
    loaded: Verifier, freezer: Freezer
) -> None:
    upstreams = loaded.upstreams
    freezer.frozen.add("issuer")
    qr = upstreams.qr(upstreams.credentials[CRED])
    result = await answered(scan(loaded, upstreams.user_token(STAFF), qr, VENUE))
    assert freezer.hung == [f"issuer /internal/v1/credentials/{CRED}"]
    assert (result.decision.decision, result.decision.reasons) == (
        "manual_check",
        ["status_unavailable"],
    )
    assert result.credential is None and result.status is None and result.stale is False


async def test_a_hanging_health_records_without_a_status_is_manual_check(
    loaded: Verifier, freezer: Freezer
) -> None:
    upstreams = loaded.upstreams
    freezer.frozen.add("health-records")
    qr = upstreams.qr(upstreams.credentials[CRED])
    result = await answered(scan(loaded, upstreams.user_token(STAFF), qr, VENUE))
    assert freezer.hung == [f"health-records /internal/v1/subjects/{SUBJ}/status"]
    assert (result.decision.decision, result.decision.reasons) == (
        "manual_check",
        ["status_unavailable"],
    )
    assert result.credential is not None and result.status is None and result.stale is False


async def test_a_hanging_health_records_leaves_the_last_status_marked_stale(
    loaded: Verifier, freezer: Freezer
) -> None:
    """The probe has not seen it hang yet (health-records still counted up), the stream is not
    followed: the status is asked for, the budget runs out, the last one (a minute old) is
    used, marked stale."""
    upstreams = loaded.upstreams
    last = HealthStatus(SUBJ, "green", None, None, 0, None, 1)
    loaded.view.apply_status(last, now=time.monotonic() - 60)
    assert loaded.sync.health_records_up and not loaded.sync.health_current
    freezer.frozen.add("health-records")
    qr = upstreams.qr(upstreams.credentials[CRED])
    result = await answered(scan(loaded, upstreams.user_token(STAFF), qr, VENUE))
    assert freezer.hung == [f"health-records /internal/v1/subjects/{SUBJ}/status"]
    assert (result.decision.decision, result.status, result.stale) == ("pass", last, True)


async def test_a_hanging_venue_admin_with_the_snapshot_loaded_answers_from_memory(
    loaded: Verifier, freezer: Freezer
) -> None:
    upstreams = loaded.upstreams
    loaded.sync.live["HEALTH"] = True  # statuses in memory are current
    freezer.frozen.add("venue-admin")
    qr = upstreams.qr(upstreams.credentials[CRED])
    # A member in the snapshot: nothing asked of venue-admin.
    staff = await answered(scan(loaded, upstreams.user_token(STAFF), qr, VENUE))
    assert staff.decision.decision == "pass"
    assert freezer.hung == []
    # A gate made after the snapshot: venue-admin is asked, hangs; the token (venue-admin's
    # signature) is taken, and the gate scans.
    gate = await answered(scan(loaded, upstreams.device_token(NEW_GATE, VENUE), qr, None))
    assert (gate.decision.decision, gate.stale) == ("pass", False)
    assert freezer.hung == [f"venue-admin /internal/v1/venues/{VENUE}/scan-context"]
    # A venue not in the snapshot: venue-admin is asked, hangs; the snapshot is the whole
    # truth, so it is unknown (404), not a 503.
    assert await refused(scan(loaded, upstreams.user_token(STAFF), qr, OTHER)) == 404


async def test_a_hanging_venue_admin_without_the_snapshot_is_503_not_a_hang(
    upstreams: Upstreams, make: Callable[[Upstreams], Verifier], freezer: Freezer
) -> None:
    verifier = make(upstreams)  # fallback mode: every miss is a question to venue-admin
    freezer.frozen.add("venue-admin")
    qr = upstreams.qr(upstreams.credentials[CRED])
    assert await refused(scan(verifier, upstreams.user_token(STAFF), qr, VENUE)) == 503
    assert freezer.hung == [f"venue-admin /internal/v1/venues/{VENUE}/scan-context"]


# --- the key sets --------------------------------------------------------------------------
async def test_a_hanging_issuer_key_set_is_401_for_an_unknown_kid_fetched_once(
    loaded: Verifier, freezer: Freezer
) -> None:
    """The issuer's key changed; its JWKS hangs. Every scan with a token of the new key is
    401 within the budget, and the burst costs the issuer one fetch (single flight), which
    goes on after the scans gave up and serves the tokens that follow."""
    upstreams, service = loaded.upstreams, loaded.service
    upstreams.issuer_ring = key_ring("access", "credential")
    for keys in (service.state.issuer_keys, service.state.device_keys):
        keys.fetched_at = 0.0  # a fetch is due
    freezer.frozen.add("issuer")
    token = upstreams.user_token(STAFF)
    qr = upstreams.qr(upstreams.credentials[CRED])

    statuses = await asyncio.gather(*(refused(scan(loaded, token, qr, VENUE)) for _ in range(5)))
    assert statuses == [401] * 5
    assert freezer.hung == ["issuer /.well-known/jwks.json"]
    assert upstreams.requests.count("venue-admin /.well-known/jwks.json") == 1

    freezer.thaw.set()
    freezer.frozen.clear()
    keys = service.state.issuer_keys

    async def fetched() -> bool:
        return keys.kid_known(token)

    assert await eventually(fetched, OUTER)
    result = await answered(scan(loaded, token, qr, VENUE))
    assert result.decision.decision == "pass"
    assert upstreams.requests.count("issuer /.well-known/jwks.json") == 1


async def test_a_gate_with_a_new_device_key_scans_while_the_issuer_key_set_hangs(
    loaded: Verifier, freezer: Freezer
) -> None:
    """Both publishers are asked at once for an unknown kid: the issuer hanging does not keep
    venue-admin's new key from a gate."""
    upstreams, service = loaded.upstreams, loaded.service
    upstreams.device_ring = key_ring("device")
    for keys in (service.state.issuer_keys, service.state.device_keys):
        keys.fetched_at = 0.0
    freezer.frozen.add("issuer")
    scanner = await answered(service.scanner(upstreams.device_token(GATE, VENUE)))
    assert (scanner.kind, scanner.id, scanner.venue_id) == ("device", GATE, VENUE)
    assert freezer.hung == ["issuer /.well-known/jwks.json"]


async def test_a_credential_of_a_key_not_yet_fetched_is_not_passed_while_the_issuer_hangs(
    loaded: Verifier, freezer: Freezer
) -> None:
    upstreams, service = loaded.upstreams, loaded.service
    token = upstreams.user_token(STAFF)  # of the key the verifier has
    upstreams.issuer_ring = key_ring("access", "credential")
    service.state.issuer_keys.fetched_at = 0.0
    freezer.frozen.add("issuer")
    qr = upstreams.qr(upstreams.credentials[CRED])
    result = await answered(scan(loaded, token, qr, VENUE))
    assert freezer.hung == ["issuer /.well-known/jwks.json"]
    # As with the issuer down: a key it cannot show makes the QR invalid (never a pass).
    assert (result.decision.decision, result.decision.reasons) == ("deny", ["credential_invalid"])


# --- one budget per scan -------------------------------------------------------------------
async def test_the_upstream_calls_of_one_scan_share_one_budget(
    loaded: Verifier, freezer: Freezer
) -> None:
    """A new gate's check with venue-admin hangs and spends the budget: the issuer, hanging as
    well, is not even asked (it would cost a second budget), and the scan goes on without
    the credential."""
    upstreams = loaded.upstreams
    freezer.frozen.update({"venue-admin", "issuer", "health-records"})
    qr = upstreams.qr(upstreams.credentials[CRED])
    result = await answered(scan(loaded, upstreams.device_token(NEW_GATE, VENUE), qr, None))
    assert freezer.hung == [f"venue-admin /internal/v1/venues/{VENUE}/scan-context"]
    assert (result.decision.decision, result.decision.reasons) == (
        "manual_check",
        ["status_unavailable"],
    )


async def test_each_scan_has_a_budget_of_its_own(loaded: Verifier, freezer: Freezer) -> None:
    """Scans one after the other in one task: the second is not charged for the first's
    hang."""
    upstreams = loaded.upstreams
    token, qr = upstreams.user_token(STAFF), upstreams.qr(upstreams.credentials[CRED])
    freezer.frozen.add("health-records")
    first = await answered(scan(loaded, token, qr, VENUE))
    assert first.decision.reasons == ["status_unavailable"]
    freezer.frozen.clear()
    second = await answered(scan(loaded, token, qr, VENUE))
    assert (second.decision.decision, second.stale) == ("pass", False)
    # scan() called alone (no scanner() first) ends its budget too.
    loaded.view.statuses.data.clear()
    freezer.frozen.add("health-records")
    scanner = await loaded.service.scanner(token)
    assert (await answered(loaded.service.scan(scanner, qr, VENUE))).decision.reasons == [
        "status_unavailable"
    ]
    freezer.frozen.clear()
    loaded.view.statuses.data.clear()
    assert (await answered(loaded.service.scan(scanner, qr, VENUE))).decision.decision == "pass"
