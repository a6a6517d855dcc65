"""What a scan reads, all in memory: credentials, revocations, members, devices, rules and
subject statuses (a bounded LRU). Every entry carries its owner's version; an update older
than what is held is ignored, so events and snapshots may arrive in any order.

A snapshot read again (view/sync.py) is installed whole (`install_revocations`,
`install_venues`): scans keep reading the old state until the new one is complete."""

import math
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

    def peek(self, key: K) -> V | None:
        """The value without making it recently used (an update is not a use)."""
        return self.data.get(key)

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
    # Status events of subjects not cached, kept this long and at most this many (see
    # `update_status`). 10 s is several times the longest status fetch (the scan's upstream
    # budget); 100,000 covers 10,000 events a second, beyond a mass-testing peak.
    recent_status_window: float = 10.0
    recent_status_capacity: int = 100_000
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
    # subject -> (newest status event seen while it was not cached, monotonic time seen).
    recent_statuses: OrderedDict[str, tuple[HealthStatus, float]] = field(
        init=False, default_factory=OrderedDict
    )
    # When the newest entry pushed out of `recent_statuses` by its capacity (not its age) had
    # been seen: until `recent_status_window` after it, the map cannot vouch for a fetch.
    recent_overflow_at: float = field(init=False, default=-math.inf)

    def __post_init__(self) -> None:
        self.credentials = LRU(self.credential_capacity)
        self.statuses = LRU(self.status_capacity)

    # --- health-records -------------------------------------------------------------
    # The status cache holds the people being scanned. A status event updates an entry held
    # and never inserts one: on a mass-testing day every verifier receives every result, and
    # inserting them would push the people at the gates out of the LRU. A miss is fetched
    # (`apply_status`) and inserted with its version.
    #
    # The race: a fetch reads version 3 at health-records, version 4 is committed and its
    # event reaches this view before the fetched answer is inserted. The event finds no entry
    # (not inserted), then the fetch would insert 3 and keep it until the next change. So an
    # event for an uncached subject is remembered for `recent_status_window` seconds (longer
    # than any fetch takes), and a fetched answer inserted for an uncached subject takes the
    # remembered status when that one is newer. Chosen over fetching again: no second request
    # on the scan path, and it does not depend on the scan code. If more events than
    # `recent_status_capacity` arrive within the window (the map had to drop entries younger
    # than the window), a fetched answer is used for its own scan but not cached until the
    # window has passed: a later scan fetches again rather than trust it.
    def apply_status(self, status: HealthStatus, now: float | None = None) -> bool:
        """A status fetched from health-records (a scan's miss, a reload): inserted, or the
        entry held updated, by version. True if the view now holds it."""
        now = time.monotonic() if now is None else now
        held = self.statuses.get(status.subject_id)
        if held is None:
            seen = self.recent_statuses.pop(status.subject_id, None)
            if seen is not None:
                if seen[0].version > status.version:
                    status = seen[0]
            elif now - self.recent_overflow_at <= self.recent_status_window:
                return False
            self.statuses.put(status.subject_id, CachedStatus(status, now))
            return True
        return self._update_held(held, status, now)

    def update_status(self, status: HealthStatus, now: float | None = None) -> bool:
        """A status event: updates the entry held (by version), inserts none. True if the
        held entry changed."""
        now = time.monotonic() if now is None else now
        held = self.statuses.peek(status.subject_id)
        if held is None:
            self._remember_uncached(status, now)
            return False
        return self._update_held(held, status, now)

    @staticmethod
    def _update_held(held: CachedStatus, status: HealthStatus, now: float) -> bool:
        if held.status.version > status.version:
            return False
        if held.status.version == status.version:
            held.fetched_at = max(held.fetched_at, now)
            return False
        # In place: the entry keeps its place in the LRU.
        held.status, held.fetched_at = status, now
        return True

    def _remember_uncached(self, status: HealthStatus, now: float) -> None:
        recent = self.recent_statuses
        seen = recent.get(status.subject_id)
        if seen is None or seen[0].version < status.version:
            recent[status.subject_id] = (status, now)
            recent.move_to_end(status.subject_id)
        horizon = now - self.recent_status_window
        while recent:
            seen_at = next(iter(recent.values()))[1]
            if seen_at < horizon:  # no fetch still in flight can race it
                recent.popitem(last=False)
            elif len(recent) > self.recent_status_capacity:
                recent.popitem(last=False)
                self.recent_overflow_at = max(self.recent_overflow_at, seen_at)
            else:
                break

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

    def install_revocations(self, revoked: set[str]) -> None:
        """The issuer's revocation list read whole. Cached credentials are dropped: events
        about them may have been missed (a reload), and a miss fetches them again."""
        self.revoked = revoked
        self.credentials = LRU(self.credential_capacity)

    def install_venues(self, loaded: "ScanView") -> None:
        """venue-admin's snapshot, read whole into `loaded`, replaces members, devices and
        rules at once. Venues deleted stay deleted (a venue is never brought back)."""
        self.members = loaded.members
        self.devices = loaded.devices
        self.rules = {v: r for v, r in loaded.rules.items() if v not in self.deleted_venues}
        self.venues = loaded.venues - self.deleted_venues
        self.venues_complete = True

    def apply_venue(self, venue_id: str, *, deleted: bool) -> None:
        """A venue deleted is deleted for good. A venue created is not yet known: `venues`
        holds the venues whose members this view holds, and the creation's event comes before
        the event of its main admin, so a scan between the two would be told 403 instead of
        asking venue-admin. The member's or the rule's event makes it known."""
        if deleted:
            self.deleted_venues.add(venue_id)
            self.venues.discard(venue_id)
            self.rules.pop(venue_id, None)
