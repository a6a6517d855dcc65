"""ScanService's credential and status checks, with the upstreams faked (one module under test):
expiry and revocation of a credential, and the 10-minute bound on a stale status."""

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
import pytest

from hc_common.auth.keys import KeyRing, LiveKey
from hc_common.auth.tokens import RemoteKeySet, sign
from hc_common.clock import utcnow
from verifier.scan.decision import HealthStatus
from verifier.scan.service import CredentialInfo, ScanService, ScanState
from verifier.view.state import ScanView


def _ring() -> KeyRing:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return KeyRing([LiveKey("ctestkey01", "credential", private, public, utcnow())])


@dataclass
class FakeSync:
    health_current: bool = False
    health_records_up: bool = False
    health_confirmed_at: float = 0.0


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("down", request=request)


def service(view: ScanView, ring: KeyRing, sync: FakeSync) -> ScanService:
    down = httpx.AsyncClient(transport=httpx.MockTransport(_unreachable), base_url="http://x")
    keys = RemoteKeySet(down, "/.well-known/jwks.json")
    keys.load(ring.jwks())
    keys.fetched_at = time.monotonic()
    state = ScanState(
        issuer_keys=keys,
        device_keys=keys,
        issuer=down,
        venue_admin=down,
        health_records=down,
        stale_after_seconds=600,
        view=view,
        sync=sync,
    )
    return ScanService(state, spool=None)  # type: ignore[arg-type]


def credential(expires_at: datetime, status: str = "active") -> CredentialInfo:
    return CredentialInfo(
        "cred1", "subj1", 1, status, "李*华", "450103********1234", date(1950, 3, 8), expires_at
    )


def qr(ring: KeyRing, expires_at: datetime) -> str:
    return "GXHC1:" + sign(
        ring,
        "credential",
        {"sub": "subj1", "jti": "cred1", "ver": 1, "exp": int(expires_at.timestamp())},
        compact_header=True,
    )


async def test_an_expired_credential_is_credential_expired() -> None:
    ring, view = _ring(), ScanView()
    expired = utcnow() - timedelta(days=1)
    view.apply_credential(credential(expired))
    info, reasons = await service(view, ring, FakeSync()).credential(qr(ring, expired))
    assert reasons == ["credential_expired"]
    assert info is not None and info.credential_id == "cred1"


async def test_revoked_and_expired_lists_both_in_the_contracts_order() -> None:
    ring, view = _ring(), ScanView()
    expired = utcnow() - timedelta(days=1)
    view.apply_credential(credential(expired, status="revoked"))
    _, reasons = await service(view, ring, FakeSync()).credential(qr(ring, expired))
    assert reasons == ["credential_revoked", "credential_expired"]


async def test_a_live_credential_has_no_reasons_and_an_unknown_one_without_issuer_is_no_pass() -> (
    None
):
    ring, view = _ring(), ScanView()
    later = utcnow() + timedelta(days=300)
    view.apply_credential(credential(later))
    assert (await service(view, ring, FakeSync()).credential(qr(ring, later)))[1] == []
    # Not in memory and the issuer unreachable: no decision on a credential we cannot see.
    _, reasons = await service(ScanView(), ring, FakeSync()).credential(qr(ring, later))
    assert reasons == ["status_unavailable"]


@pytest.mark.parametrize(("age_seconds", "expected_stale"), [(60, True), (599, True)])
async def test_health_records_down_answers_a_status_up_to_10_minutes_old(
    age_seconds: float, expected_stale: bool
) -> None:
    view = ScanView()
    known = HealthStatus("subj1", "green", None, None, 0, None, 3)
    view.apply_status(known, now=time.monotonic() - age_seconds)
    status, stale = await service(view, _ring(), FakeSync()).status("subj1")
    assert status == known and stale is expected_stale


async def test_a_status_older_than_10_minutes_is_not_used() -> None:
    view = ScanView()
    view.apply_status(
        HealthStatus("subj1", "green", None, None, 0, None, 3), now=time.monotonic() - 601
    )
    status, stale = await service(view, _ring(), FakeSync()).status("subj1")
    assert status is None and stale is False  # -> status_unavailable, manual_check


async def test_an_unknown_subject_with_health_records_down_has_no_status() -> None:
    status, _ = await service(ScanView(), _ring(), FakeSync()).status("nobody")
    assert status is None
