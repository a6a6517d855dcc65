"""The verifier's unit tests: no network, no database, no NATS. The three upstreams are one
in-memory fake behind `httpx.MockTransport`, the bus a fake that records what it is sent."""

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hc_common.auth.keys import KeyRing, LiveKey
from hc_common.auth.tokens import RemoteKeySet, sign
from hc_common.clock import utcnow
from hc_common.events.bus import EventBus
from hc_common.ids import encode, new_id
from verifier.access.spool import AccessSpool
from verifier.scan.service import ScanService, ScanState
from verifier.view.state import ScanView
from verifier.view.sync import ViewSync

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def an_id(label: str) -> str:
    """An id of the system's format, the same for the same label: tests name their venues,
    users and credentials ("venue-1") and the verifier, which sends nothing but our ids to
    the other services, takes them for ids."""
    return encode(int.from_bytes(hashlib.sha256(label.encode()).digest()[:16]))


def key_ring(*purposes: str) -> KeyRing:
    keys = []
    for purpose in purposes:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        keys.append(LiveKey(purpose[0] + new_id()[-9:], purpose, private, public, utcnow()))
    return KeyRing(keys)


def member(
    venue_id: str,
    user_id: str,
    permissions: list[str],
    *,
    removed: bool = False,
    version: int = 1,
    role: str = "staff",
) -> dict[str, Any]:
    """venue-admin's member-event shape (also its snapshot's and scan context's)."""
    return {
        "venue_id": venue_id,
        "user_id": user_id,
        "role": role,
        "permissions": permissions,
        "removed": removed,
        "version": version,
    }


def device(
    venue_id: str, device_id: str, *, active: bool = True, version: int = 1
) -> dict[str, Any]:
    return {"device_id": device_id, "venue_id": venue_id, "active": active, "version": version}


def rule(
    venue_id: str,
    allowed_colors: list[str] | None = None,
    *,
    max_nat_age_hours: int | None = None,
    min_vaccine_doses: int = 0,
    version: int = 0,
) -> dict[str, Any]:
    return {
        "venue_id": venue_id,
        "allowed_colors": allowed_colors or ["green"],
        "max_nat_age_hours": max_nat_age_hours,
        "min_vaccine_doses": min_vaccine_doses,
        "version": version,
    }


def credential(
    credential_id: str,
    subject_id: str,
    *,
    status: str = "active",
    version: int = 1,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """The issuer's credential-event shape (also its internal read's)."""
    return {
        "credential_id": credential_id,
        "subject_id": subject_id,
        "version": version,
        "status": status,
        "masked_name": "李*华",
        "masked_id_number": "450103********1234",
        "birth_date": "1950-03-08",
        "expires_at": (expires_at or utcnow() + timedelta(days=300)).isoformat(),
        "revoked_at": utcnow().isoformat() if status == "revoked" else None,
    }


def status(subject_id: str, color: str = "green", *, version: int = 1) -> dict[str, Any]:
    """health-records' status-event shape (also its internal read's)."""
    return {
        "subject_id": subject_id,
        "masked_id_number": None,
        "color": color,
        "color_reason": None,
        "nat": None,
        "vaccination": None,
        "version": version,
        "updated_at": "2026-11-27T08:00:00Z",
    }


@dataclass
class Upstreams:
    """The issuer, venue-admin and health-records as the verifier reads them, in memory.

    `venues` maps a venue id to its scan context parts; `down` names the services that do
    not answer, `failures` how many next requests a service answers with a 503; `requests`
    lists every path asked for (to tell a view hit from a miss)."""

    issuer_ring: KeyRing = field(default_factory=lambda: key_ring("access", "credential"))
    device_ring: KeyRing = field(default_factory=lambda: key_ring("device"))
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    revocation_pages: list[list[str]] = field(default_factory=list)
    venues: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshot_pages: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    # Called with (service, request) as each request arrives: a test looks at what happens
    # while a request is in flight, or makes something happen then.
    before_answer: Callable[[str, httpx.Request], None] | None = None

    def add_venue(
        self,
        venue_id: str,
        members: list[dict[str, Any]] | None = None,
        devices: list[dict[str, Any]] | None = None,
        venue_rule: dict[str, Any] | None = None,
    ) -> None:
        self.venues[venue_id] = {
            "members": {m["user_id"]: m for m in members or []},
            "devices": {d["device_id"]: d for d in devices or []},
            "rule": venue_rule or rule(venue_id),
        }

    def client(self, name: str) -> httpx.AsyncClient:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(f"{name} {request.url.path}")
            if self.before_answer is not None:
                self.before_answer(name, request)
            if name in self.down:
                raise httpx.ConnectError("down", request=request)
            if self.failures.get(name):
                self.failures[name] -= 1
                return httpx.Response(503)
            return self._answer(name, request)

        return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url=f"http://{name}")

    def _answer(self, name: str, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        if path == "/.well-known/jwks.json":
            ring = self.issuer_ring if name == "issuer" else self.device_ring
            return httpx.Response(200, json=ring.jwks())
        if path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if name == "issuer" and path.startswith("/internal/v1/credentials/"):
            found = self.credentials.get(path.rsplit("/", 1)[1])
            return httpx.Response(200, json=found) if found else httpx.Response(404)
        if name == "issuer" and path == "/internal/v1/revocations":
            return self._page(
                [{"items": ids} for ids in self.revocation_pages] or [{"items": []}],
                params.get("after"),
            )
        if name == "venue-admin" and path == "/internal/v1/scan-snapshot":
            if not self.snapshot_pages and self.venues:
                return self._snapshot_of_venues(int(params.get("limit", 500)), params.get("cursor"))
            return self._page(
                self.snapshot_pages or [{"members": [], "devices": [], "rules": []}],
                params.get("cursor"),
            )
        if name == "venue-admin" and path.endswith("/scan-context"):
            venue_id = path.split("/")[-2]
            venue = self.venues.get(venue_id)
            if venue is None:
                return httpx.Response(404)
            found = venue["devices"].get(params.get("device_id"))
            return httpx.Response(
                200,
                json={
                    "venue_id": venue_id,
                    "member": venue["members"].get(params.get("user_id")),
                    "device": found,
                    "rule": venue["rule"],
                },
            )
        if name == "health-records" and path.startswith("/internal/v1/subjects/"):
            found = self.statuses.get(path.split("/")[-2])
            return httpx.Response(200, json=found) if found else httpx.Response(404)
        if name == "health-records" and path == "/internal/v1/statuses":
            wanted = json.loads(request.content)["subject_ids"]
            items = [self.statuses[s] for s in wanted if s in self.statuses]
            return httpx.Response(200, json={"items": items})
        return httpx.Response(404)

    def _snapshot_of_venues(self, limit: int, cursor: str | None) -> httpx.Response:
        """venue-admin's snapshot of `venues` as it pages it: up to `limit` venues by id
        after the cursor (the last id of the previous page)."""
        ids = sorted(v for v in self.venues if not cursor or v > cursor)
        page, more = ids[:limit], len(ids) > limit
        venues = [self.venues[v] for v in page]
        return httpx.Response(
            200,
            json={
                "members": [m for v in venues for m in v["members"].values()],
                "devices": [d for v in venues for d in v["devices"].values()],
                "rules": [v["rule"] for v in venues],
                "next_cursor": page[-1] if more else None,
            },
        )

    @staticmethod
    def _page(pages: list[dict[str, Any]], cursor: str | None) -> httpx.Response:
        """Page n+1 is asked for with cursor "n" (1-based)."""
        index = int(cursor) if cursor else 0
        page = dict(pages[index])
        page["next_cursor"] = str(index + 1) if index + 1 < len(pages) else None
        return httpx.Response(200, json=page)

    # --- tokens -----------------------------------------------------------------------
    def user_token(self, user_id: str) -> str:
        claims = {"sub": user_id, "aud": "hc", "exp": int(time.time()) + 600}
        return sign(self.issuer_ring, "access", claims)

    def device_token(self, device_id: str, venue_id: str) -> str:
        claims = {
            "sub": device_id,
            "venue_id": venue_id,
            "aud": "hc",
            "exp": int(time.time()) + 600,
        }
        return sign(self.device_ring, "device", claims)

    def qr(self, info: dict[str, Any], expires_at: datetime | None = None) -> str:
        """The text of a credential's QR code, signed by the issuer."""
        expiry = expires_at or datetime.fromisoformat(info["expires_at"])
        claims = {
            "sub": info["subject_id"],
            "jti": info["credential_id"],
            "ver": info["version"],
            "exp": int(expiry.timestamp()),
        }
        return "GXHC1:" + sign(self.issuer_ring, "credential", claims, compact_header=True)


@dataclass
class Published:
    subject: str
    payload: bytes
    msg_id: str


class FakeBus(EventBus):
    """An EventBus that never connects: `publish_many` records, or raises while `failing`."""

    def __init__(self) -> None:
        super().__init__("nats://127.0.0.1:1", "verifier-test")
        self.published: list[Published] = []
        self.failing = False
        self.up = True

    @property
    def connected(self) -> bool:
        return self.up

    async def publish_many(
        self, messages: list[tuple[str, bytes, str]], timeout: float = 5.0
    ) -> None:
        if self.failing:
            raise ConnectionError("the bus went away mid-batch")
        self.published += [Published(*message) for message in messages]


@dataclass
class Verifier:
    """A ScanService on a view and a ViewSync (neither started), its journal in a temporary
    directory."""

    upstreams: Upstreams
    view: ScanView
    sync: ViewSync
    spool: AccessSpool
    service: ScanService
    bus: FakeBus


@pytest.fixture
def upstreams() -> Upstreams:
    return Upstreams()


def build_verifier(
    upstreams: Upstreams,
    spool_dir: Path,
    *,
    client: Callable[[str], httpx.AsyncClient] | None = None,
    scan_budget_seconds: float | None = None,
) -> Verifier:
    """A verifier on `upstreams` (their HTTP clients by `client`, default theirs) with its
    key sets loaded, a fake bus and a journal in `spool_dir`."""
    client = client or upstreams.client
    issuer, venue_admin = client("issuer"), client("venue-admin")
    health_records = client("health-records")
    issuer_keys = RemoteKeySet(issuer, "/.well-known/jwks.json")
    issuer_keys.load(upstreams.issuer_ring.jwks())
    device_keys = RemoteKeySet(venue_admin, "/.well-known/jwks.json")
    device_keys.load(upstreams.device_ring.jwks())
    issuer_keys.fetched_at = device_keys.fetched_at = time.monotonic()
    view, bus = ScanView(), FakeBus()
    sync = ViewSync(
        view, bus, issuer=issuer, venue_admin=venue_admin, health_records=health_records
    )
    budget = {} if scan_budget_seconds is None else {"scan_budget_seconds": scan_budget_seconds}
    state = ScanState(
        issuer_keys=issuer_keys,
        device_keys=device_keys,
        issuer=issuer,
        venue_admin=venue_admin,
        health_records=health_records,
        stale_after_seconds=600,
        view=view,
        sync=sync,
        **budget,
    )
    spool = AccessSpool(spool_dir, bus, "verifier.access_record.batch.v1")
    spool.open()
    return Verifier(upstreams, view, sync, spool, ScanService(state, spool), bus)


@pytest.fixture
def make_verifier(tmp_path: Path) -> Callable[[Upstreams], Verifier]:
    def make(upstreams: Upstreams) -> Verifier:
        return build_verifier(upstreams, tmp_path / "spool")

    return make


@pytest.fixture
def no_retry_waits() -> Iterator[None]:
    """stamina's waits are zero and it gives up after 5 attempts (a test cannot hang)."""
    with stamina.set_testing(True, attempts=5):
        yield
