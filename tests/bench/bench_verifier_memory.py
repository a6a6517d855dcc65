"""What each of the verifier's in-memory caches costs per entry, measured with tracemalloc on
entries shaped as in production (real signed tokens, ids of the system's format), and the
memory budget of one worker at the default capacities (docs/scaling.md).

    .venv/bin/python -m tests.bench verifier_memory
"""

import datetime
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hc_common.auth.keys import KeyRing, LiveKey
from hc_common.auth.tokens import sign
from hc_common.ids import new_id
from verifier.config import Settings
from verifier.scan.decision import HealthStatus, Rule
from verifier.scan.service import Scanner
from verifier.view.state import LRU, CredentialInfo, Device, Member, ScanView

N = 20_000
MiB = 1024 * 1024


def ring(purpose: str) -> KeyRing:
    private = Ed25519PrivateKey.generate()
    key = LiveKey(f"{purpose}-2026-11-29-ab12cd34", purpose, private, b"", datetime.datetime.now())
    return KeyRing([key])


def per_entry(fill: Callable[[int], None]) -> float:
    """Bytes per entry: `fill(N)` measured from the first entry to the last."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(N)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / N


@dataclass
class Cache:
    name: str
    entries: int  # at the default capacity, or as planned for a province
    bytes_each: float

    @property
    def total_mib(self) -> float:
        return self.entries * self.bytes_each / MiB


def measure() -> list[Cache]:
    now = datetime.datetime.now(datetime.UTC)
    exp = int(now.timestamp()) + 3600
    access, credential = ring("access"), ring("credential")
    view = ScanView(status_capacity=N, credential_capacity=N)
    tokens: LRU[str, tuple[Scanner, float]] = LRU(N)
    qrs: LRU[str, tuple[dict[str, object], float]] = LRU(N)

    def statuses(n: int) -> None:
        for _ in range(n):
            view.apply_status(HealthStatus(new_id(), "green", "negative", now, 3, now, 12))

    def credentials(n: int) -> None:
        for _ in range(n):
            view.apply_credential(
                CredentialInfo(
                    new_id(), new_id(), 1, "active", "李*华", "450103********1234", now.date(), now
                )
            )

    def scanner_tokens(n: int) -> None:
        for _ in range(n):
            user = new_id()
            claims = {"iss": "issuer", "aud": "hc", "sub": user, "typ": "access"}
            token = sign(access, "access", {**claims, "mph": "138****0000", "exp": exp})
            tokens.put(token, (Scanner("user", user, None), float(exp)))

    def qr_tokens(n: int) -> None:
        for _ in range(n):
            claims = {"sub": new_id(), "jti": new_id(), "ver": 1, "exp": exp}
            token = sign(credential, "credential", claims, compact_header=True)
            qrs.put(token, (claims, float(exp)))

    def members(n: int) -> None:
        for _ in range(n):
            view.apply_member(Member(new_id(), new_id(), frozenset({"reverse_scan"}), False, 1))

    def devices(n: int) -> None:
        for _ in range(n):
            view.apply_device(Device(new_id(), new_id(), True, 1))

    def rules(n: int) -> None:
        for _ in range(n):
            view.apply_rule(new_id(), Rule(frozenset({"green"}), 48, 0, 2))

    def revoked(n: int) -> None:
        for _ in range(n):
            view.revoked.add(new_id())

    settings = Settings()
    return [
        Cache("statuses (LRU)", settings.status_cache_size, per_entry(statuses)),
        Cache("credentials (LRU)", 2_000_000, per_entry(credentials)),
        Cache("verified scanner tokens (LRU)", 200_000, per_entry(scanner_tokens)),
        Cache("verified QR tokens (LRU)", 200_000, per_entry(qr_tokens)),
        # A province: ~300,000 venues with ~3 scanning members and ~1 gate each.
        Cache("members (complete)", 1_000_000, per_entry(members)),
        Cache("devices (complete)", 300_000, per_entry(devices)),
        Cache("rules + venue ids (complete)", 300_000, per_entry(rules)),
        Cache("revoked credential ids (complete)", 1_000_000, per_entry(revoked)),
    ]


def main() -> None:
    started = time.monotonic()
    caches = measure()
    print("python -m tests.bench verifier_memory  (tracemalloc, 20,000 entries each)")
    print(f"{'cache':36} {'bytes/entry':>12} {'entries':>12} {'MiB':>9}")
    for cache in caches:
        print(
            f"{cache.name:36} {cache.bytes_each:12.0f} {cache.entries:12,} {cache.total_mib:9.0f}"
        )
    total = sum(c.total_mib for c in caches)
    print(f"{'total per worker at these sizes':36} {'':12} {'':12} {total:9.0f}")
    print(f"[{time.monotonic() - started:.1f} s]")


if __name__ == "__main__":
    main()
