"""What a scan reads, all in memory: credentials, revocations, members, devices, rules and
subject statuses (a bounded LRU). Every entry carries its owner's version; an update older
than what is held is ignored, so events and snapshots may arrive in any order."""

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Generic, Literal, TypeVar

from verifier.scan.decision import HealthStatus, Rule

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.capacity:
            self.data.popitem(last=False)

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What the verifier keeps of a credential (the issuer's masked data, never more)."""

    credential_id: str
    subject_id: str
    version: int
    status: Literal["active", "revoked"]
    masked_name: str
    masked_id_number: str
    birth_date: date
    expires_at: datetime

    @property
    def version_key(self) -> tuple[int, bool]:
        # A revocation keeps the version; it wins over the same version still active.
        return self.version, self.status == "revoked"


@dataclass(frozen=True, slots=True)
class Member:
    venue_id: str
    user_id: str
    permissions: frozenset[str]
    removed: bool
    version: int


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    venue_id: str
    active: bool
    version: int


@dataclass(slots=True)
class CachedStatus:
    status: HealthStatus
    fetched_at: float  # monotonic time it was last known current


@dataclass
class ScanView:
    status_capacity: int = 1_000_000
    credential_capacity: int = 2_000_000
    credentials: LRU[str, CredentialInfo] = field(init=False)
    statuses: LRU[str, CachedStatus] = field(init=False)
    revoked: set[str] = field(default_factory=set)
    members: dict[tuple[str, str], Member] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)
    venues: set[str] = field(default_factory=set)
    deleted_venues: set[str] = field(default_factory=set)
    # True once venue-admin's snapshot is loaded: a miss is then a "no", not a question.
    venues_complete: bool = False

    def __post_init__(self) -> None:
        self.credentials = LRU(self.credential_capacity)
        self.statuses = LRU(self.status_capacity)

    # --- health-records -------------------------------------------------------------
    def apply_status(self, status: HealthStatus, now: float | None = None) -> bool:
        held = self.statuses.get(status.subject_id)
        now = time.monotonic() if now is None else now
        if held is not None and held.status.version > status.version:
            return False
        if held is not None and held.status.version == status.version:
            held.fetched_at = max(held.fetched_at, now)
            return False
        self.statuses.put(status.subject_id, CachedStatus(status, now))
        return True

    # --- issuer ---------------------------------------------------------------------
    def apply_credential(self, info: CredentialInfo) -> bool:
        held = self.credentials.get(info.credential_id)
        if held is not None and held.version_key > info.version_key:
            return False
        self.credentials.put(info.credential_id, info)
        if info.status == "revoked":
            self.revoked.add(info.credential_id)
        return True

    # --- venue-admin ----------------------------------------------------------------
    def apply_member(self, member: Member) -> bool:
        key = (member.venue_id, member.user_id)
        held = self.members.get(key)
        if held is not None and held.version > member.version:
            return False
        self.members[key] = member
        if member.venue_id not in self.deleted_venues:
            self.venues.add(member.venue_id)
        return True

    def apply_device(self, device: Device) -> bool:
        held = self.devices.get(device.device_id)
        if held is not None and held.version > device.version:
            return False
        self.devices[device.device_id] = device
        return True

    def apply_rule(self, venue_id: str, rule: Rule) -> bool:
        held = self.rules.get(venue_id)
        if held is not None and held.version > rule.version:
            return False
        self.rules[venue_id] = rule
        if venue_id not in self.deleted_venues:
            self.venues.add(venue_id)
        return True

    def apply_venue(self, venue_id: str, *, deleted: bool) -> None:
        if deleted:
            self.deleted_venues.add(venue_id)
            self.venues.discard(venue_id)
            self.rules.pop(venue_id, None)
        else:
            self.venues.add(venue_id)
